#!/usr/bin/env python3
"""Run a SOLO-family model on images and save the predictions drawn on them.

    python demo.py --config-file configs/quick_schedules/SOLO_R18_shapes.yaml \
        --input img1.png "more/*.jpg" --output vis/ \
        --opts MODEL.WEIGHTS output/quick_schedules/SOLO_R18_shapes/model_final.pth

Writes ``<output>/<input name>.png`` for every input: the image with the instance masks, class
names and scores of the predictions whose score is at least --confidence-threshold. An input
that cannot be read is reported with its path and skipped; the exit status is then 1.
Class names come from the metadata of ``cfg.DATASETS.TEST[0]`` (when the config names one).
"""
import argparse
import glob
import logging
import os
import sys
import time
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.utils.logger import setup_logger
from detectron2.utils.visualizer import ColorMode, Visualizer

import solo_d2  # noqa: F401  registers the SOLO meta-architecture, heads and datasets
from solo_d2 import add_solo_config
from solo_d2.data import ImageReadError, read_image

logger = logging.getLogger("solo_d2.demo")


def setup_cfg(args: argparse.Namespace) -> CfgNode:
    """Config from --config-file and the trailing options, frozen."""
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    return cfg


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="SOLO demo: draw predicted instances on images")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="path to a config yaml")
    parser.add_argument(
        "--input",
        nargs="+",
        required=True,
        help="image files or glob patterns (quote them), e.g. 'imgs/*.jpg'",
    )
    parser.add_argument(
        "--output",
        required=True,
        help="folder for the visualisations (created if missing); one PNG per input",
    )
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.3,
        help="draw only instances with a score at least this high (default 0.3)",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="config options as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pth",
    )
    parser.add_argument(
        "trailing_opts",
        default=[],
        nargs=argparse.REMAINDER,
        metavar="KEY VALUE",
        help="config options may also follow the other arguments without --opts "
        "(as in train_net.py)",
    )
    return parser


def expand_inputs(patterns: Sequence[str]) -> List[str]:
    """Files named by ``patterns`` (paths or globs), in order, without duplicates.

    Raises FileNotFoundError naming the pattern that matches no file.
    """
    paths: List[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(p for p in glob.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
            if not matches:
                raise FileNotFoundError(f"--input pattern {pattern!r} matches no file")
        else:
            if not os.path.isfile(pattern):
                raise FileNotFoundError(f"--input file {pattern!r} does not exist (or is not a file)")
            matches = [pattern]
        paths.extend(p for p in matches if p not in paths)
    return paths


def output_path(output_dir: str, input_path: str, used: set) -> str:
    """``<output_dir>/<input stem>.png``; a stem seen before gets a ``_1``, ``_2`` ... suffix."""
    stem = os.path.splitext(os.path.basename(input_path))[0]
    name, k = stem, 0
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return os.path.join(output_dir, name + ".png")


def visualize(
    predictor: DefaultPredictor, image_bgr: np.ndarray, metadata, threshold: float
) -> Tuple[np.ndarray, int]:
    """Predict on one BGR image; return the drawing (RGB uint8, the image's size) and the
    number of instances drawn."""
    instances = predictor(image_bgr)["instances"].to("cpu")
    instances = instances[instances.scores >= threshold]
    vis = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(instances).get_image(), len(instances)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    args.opts = list(args.trailing_opts) + list(args.opts)
    # Bad arguments end with "demo.py: error: ..." and exit status 2, before any model is built.
    if not os.path.isfile(args.config_file):
        parser.error(f"--config-file {args.config_file!r} does not exist")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(
            f"--output {args.output!r} is an existing file; it must be a folder (one PNG per input)"
        )
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    try:
        inputs = expand_inputs(args.input)
    except FileNotFoundError as e:
        parser.error(str(e))
    setup_logger(name="solo_d2")
    cfg = setup_cfg(args)
    metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if len(cfg.DATASETS.TEST) else "__unused")
    predictor = DefaultPredictor(cfg)  # reads BGR, converts to cfg.INPUT.FORMAT itself
    os.makedirs(args.output, exist_ok=True)
    used: set = set()
    failed = 0
    for path in inputs:
        try:
            image = read_image(path, format="BGR")
        except ImageReadError as e:
            logger.error(f"{e}; skipped")
            failed += 1
            continue
        start = time.perf_counter()
        drawing, num = visualize(predictor, image, metadata, args.confidence_threshold)
        out = output_path(args.output, path, used)
        cv2.imwrite(out, drawing[:, :, ::-1])
        logger.info(
            f"{path}: {num} instances >= {args.confidence_threshold} in "
            f"{time.perf_counter() - start:.2f}s -> {out}"
        )
    if failed:
        logger.error(f"{failed} of {len(inputs)} inputs could not be read")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
