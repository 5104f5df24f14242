#!/usr/bin/env python3
r"""Run a SOLO-family model on images and save the predictions drawn on them.

    python demo.py --config-file configs/quick_schedules/SOLO_R18_shapes.yaml \
        --input img1.png "more/*.jpg" --output vis/ \
        --opts MODEL.WEIGHTS output/quick_schedules/SOLO_R18_shapes/model_final.pth

    python demo.py --config-file CFG --video-input clip.mp4 --output vis/ MODEL.WEIGHTS W

    python demo.py --config-file CFG --onnx export/model.onnx --input img1.png --output vis/

    python demo.py --config-file configs/SOLOv2_R50_3x.yaml --input photo.jpg --output vis/ \
        MODEL.WEIGHTS solo_d2://SOLOv2_R50_3x MODEL.DEVICE cpu

    python demo.py --config-file configs/quick_schedules/SOLO_R18_shapes.py --input img1.png \
        --output vis/ train.init_checkpoint=output/quick_schedules/SOLO_R18_shapes/model_final.pth

Writes <output>/<input name>.png for every input: the image with the instance masks, class
names and scores of the predictions whose score is at least --confidence-threshold (a panoptic
model: its stuff regions and things, as Detectron2 draws Panoptic FPN's, and a legend) (a video
becomes <output>/<video name>.mp4). An input that cannot be read is reported with its path and
skipped; the exit status is then 1. Class names are those the checkpoint carries (converted
mmdet checkpoints), else those of the first test dataset. MODEL.WEIGHTS (a LazyConfig's
train.init_checkpoint) is a file, an http(s) URL or a name such as solo_d2://SOLOv2_R50_3x
(mmdet's published COCO weights, downloaded once and converted; docs/MODEL_ZOO.md). Without
weights the model is untrained, and the demo says so. A LazyConfig (.py) takes key=value
options instead of KEY VALUE pairs. With --onnx the graph written by tools/export_model.py (fp32,
bf16 or int8) runs on the CPU in ONNX Runtime or OpenVINO (--backend, --threads) instead of
the PyTorch model (MODEL.WEIGHTS is then not read; the config gives the test resize and
INPUT.FORMAT, the graph's metadata the class names).
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
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.catalog import Metadata
from detectron2.utils.logger import setup_logger
from detectron2.utils.video_visualizer import VideoVisualizer
from detectron2.utils.visualizer import ColorMode, Visualizer

import solo_d2  # noqa: F401  registers the SOLO meta-architecture, heads and datasets
from solo_d2 import SOLOPredictor
from solo_d2.checkpoint import WEIGHTS_ERRORS
from solo_d2.utils.cli import readable_file, tool_parser
from solo_d2.data import ImageReadError, read_image
from solo_d2.engine import load_config
from solo_d2.engine.configs import AnyConfig, config_weights, dataset_names
from solo_d2.export.precision import PrecisionError
from solo_d2.engine.panoptic_drawing import draw_panoptic, panoptic_drawing_metadata

logger = logging.getLogger("solo_d2.demo")


def setup_cfg(args: argparse.Namespace) -> AnyConfig:
    """Config from --config-file (yaml or LazyConfig .py) and the trailing options."""
    return load_config(args.config_file, args.opts)


def get_parser() -> argparse.ArgumentParser:
    parser = tool_parser(__doc__)
    parser.add_argument("--config-file", required=True, metavar="FILE", type=readable_file,
                        help="path to a config: yaml, or a LazyConfig .py")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        nargs="+",
        help="image files or glob patterns (quote them), e.g. 'imgs/*.jpg'",
    )
    source.add_argument("--video-input", metavar="FILE", type=readable_file,
                        help="a video file: every frame is predicted and drawn")
    parser.add_argument(
        "--output",
        required=True,
        help="folder for the visualisations (created if missing): one PNG per image, "
        "<video name>.mp4 for a video",
    )
    parser.add_argument("--onnx", metavar="FILE", type=readable_file,
                        help="run this exported graph (tools/export_model.py) in ONNX Runtime "
                        "or OpenVINO (--backend)")
    parser.add_argument("--backend", choices=("onnxruntime", "openvino"),
                        help="runtime of --onnx (default: OpenVINO for bf16 and int8 files when "
                        "installed, else ONNX Runtime; docs/DEPLOYMENT.md)")
    parser.add_argument("--threads", type=int,
                        help="threads of the --onnx runtime (default: every core)")
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.3,
        help="draw only instances with a score at least this high",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="config options as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pth (a "
        "LazyConfig: key=value, e.g. train.init_checkpoint=model_final.pth)",
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
    predictor: SOLOPredictor, image_bgr: np.ndarray, metadata, threshold: float
) -> Tuple[np.ndarray, int]:
    """Predict on one BGR image; return the drawing (RGB uint8, the image's size) and the
    number of instances drawn."""
    output = predictor(image_bgr)
    if "panoptic_seg" in output:  # PanopticSOLO: stuff, things and a legend
        return draw_panoptic(image_bgr[:, :, ::-1], output, metadata, threshold)
    instances = output["instances"].to("cpu")
    instances = instances[instances.scores >= threshold]
    vis = Visualizer(image_bgr[:, :, ::-1], metadata, instance_mode=ColorMode.IMAGE)
    return vis.draw_instance_predictions(instances).get_image(), len(instances)


def demo_metadata(cfg: AnyConfig, predictor: SOLOPredictor) -> Metadata:
    """Class names for drawing: those the checkpoint carries (a converted mmdet checkpoint),
    else those of the config's first test dataset (a panoptic one's things and stuff, in the
    model's numbering, with their colours)."""
    tests = dataset_names(cfg, "test")
    if tests and MetadataCatalog.get(tests[0]).get("evaluator_type") == "coco_panoptic_seg":
        if MetadataCatalog.get(tests[0]).get("thing_dataset_id_to_contiguous_id") is None:
            DatasetCatalog.get(tests[0])  # solo_d2's panoptic loader sets them
        return panoptic_drawing_metadata(MetadataCatalog.get(tests[0]), tests[0])
    if predictor.thing_classes is not None:
        return Metadata(name="solo_d2_demo_checkpoint", thing_classes=predictor.thing_classes)
    tests = dataset_names(cfg, "test")
    return MetadataCatalog.get(tests[0] if tests else "__unused")


def run_images(args, predictor: SOLOPredictor, metadata) -> int:
    """Draw every image input into args.output; unreadable ones are reported and skipped.
    Returns the exit status: 1 when an input could not be read."""
    inputs = expand_inputs(args.input)
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


def run_video(args, predictor: SOLOPredictor, metadata) -> int:
    """Draw every frame of args.video_input into ``<output>/<video name>.mp4`` (as
    Detectron2's demo does). Returns 1 when the video cannot be read."""
    video = cv2.VideoCapture(args.video_input)
    if not video.isOpened():
        logger.error(f"cannot read video {args.video_input!r}")
        return 1
    fps = video.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = output_path(args.output, args.video_input, set())[: -len(".png")] + ".mp4"
    writer, frames = None, 0
    visualizer = VideoVisualizer(metadata, ColorMode.IMAGE)
    start = time.perf_counter()
    while True:
        ok, frame = video.read()
        if not ok:
            break
        output = predictor(frame)
        if "panoptic_seg" in output:
            drawing = draw_panoptic(frame[:, :, ::-1], output, metadata,
                                    args.confidence_threshold)[0]
        else:
            instances = output["instances"].to("cpu")
            instances = instances[instances.scores >= args.confidence_threshold]
            drawing = visualizer.draw_instance_predictions(frame[:, :, ::-1],
                                                           instances).get_image()
        if writer is None:
            h, w = drawing.shape[:2]
            writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        writer.write(np.ascontiguousarray(drawing[:, :, ::-1]))
        frames += 1
    video.release()
    if writer is None:
        logger.error(f"video {args.video_input!r} has no readable frame")
        return 1
    writer.release()
    logger.info(f"{args.video_input}: {frames} frames in {time.perf_counter() - start:.1f}s "
                f"-> {out_path}")
    return 0


def build_predictor(args: argparse.Namespace, cfg: AnyConfig):
    """SOLOPredictor, or with --onnx an ONNXPredictor: ``predictor(bgr) -> {"instances"}``
    and ``thing_classes`` either way. Both read BGR and convert to the config's input format."""
    if args.onnx is not None:
        from solo_d2.export import ONNXPredictor

        predictor = ONNXPredictor(args.onnx, cfg, backend=args.backend, threads=args.threads)
        logger.info(f"{args.onnx}: {predictor.backend}")
        return predictor
    if not config_weights(cfg):
        logger.warning(
            "MODEL.WEIGHTS is empty (train.init_checkpoint of a LazyConfig): this model is "
            "UNTRAINED (random weights) and its predictions mean nothing. Give a trained "
            "checkpoint: MODEL.WEIGHTS output/.../model_final.pth"
        )
    return SOLOPredictor(cfg)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    args.opts = list(args.trailing_opts) + list(args.opts)
    # Bad arguments end with "demo.py: error: ..." and exit status 2, before any model is built.
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        parser.error(
            f"--output {args.output!r} is an existing file; it must be a folder"
        )
    if not 0.0 <= args.confidence_threshold <= 1.0:
        parser.error(f"--confidence-threshold must be in [0, 1], got {args.confidence_threshold}")
    if args.onnx is None and (args.backend or args.threads):
        parser.error("--backend and --threads are for --onnx")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.input is not None:
        try:
            expand_inputs(args.input)
        except FileNotFoundError as e:
            parser.error(str(e))
    setup_logger(name="solo_d2")
    cfg = setup_cfg(args)
    try:
        predictor = build_predictor(args, cfg)
    except (*WEIGHTS_ERRORS, PrecisionError) as e:  # weights; a runtime that is missing
        print(f"error: {e}", file=sys.stderr)
        return 1
    metadata = demo_metadata(cfg, predictor)
    os.makedirs(args.output, exist_ok=True)
    if args.video_input is not None:
        return run_video(args, predictor, metadata)
    return run_images(args, predictor, metadata)


if __name__ == "__main__":
    sys.exit(main())
