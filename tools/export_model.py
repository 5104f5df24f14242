#!/usr/bin/env python
r"""Export a SOLO-family model to ONNX, post-processing included (docs/DEPLOYMENT.md).

    python tools/export_model.py --config-file configs/SOLOv2_R50_1x.yaml --output export/ \
        [--sample-image img.jpg] [--opset 17] MODEL.WEIGHTS solov2_r50_1x.pth
    python tools/export_model.py --config-file configs/SOLOv2_R50_1x.py --output export/ \
        train.init_checkpoint=solov2_r50_1x.pth

Writes <output>/model.onnx: one (3, H, W) image in (uint8, INPUT.FORMAT channel order, resized
as the test loader resizes, not normalised), any H and W; out: masks (K, H, W) bool, scores
(K,), classes (K,) int64, boxes (K, 4) XYXY, K >= 0. The graph holds normalisation, padding,
backbone, head, point NMS, candidate selection, mask scoring, Matrix NMS, top-k and the
masks' upsampling and cropping. With --sample-image the exported graph is run once in ONNX
Runtime on it and compared with PyTorch. Run it with demo.py --onnx <output>/model.onnx.

    python tools/export_model.py --config-file CFG --output export_int8/ --precision int8 \
        --calibration-images "my_images/*.jpg" MODEL.WEIGHTS model_final.pth
    python tools/export_model.py --config-file CFG --output export_bf16/ --precision bf16 \
        MODEL.WEIGHTS model_final.pth

--precision int8 quantizes the convolutions of backbone, FPN and heads (calibrated on
--calibration-count of your images, preprocessed as the test loader does); bf16 records that
the file is to run in bf16 (OpenVINO). Both keep the same inputs and outputs, and are written
only when this CPU has the arithmetic for them and they measure at least 1.2x faster than fp32
(--force skips both checks). docs/DEPLOYMENT.md says what is quantized and what it costs.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402

from solo_d2.utils.cli import readable_file, tool_parser  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    from solo_d2.export.calibration_data import DEFAULT_CALIBRATION_COUNT
    from solo_d2.export.onnx_export import DEFAULT_OPSET
    from solo_d2.export.precision import PRECISIONS

    p = tool_parser(__doc__)
    p.add_argument("--config-file", required=True, metavar="FILE", type=readable_file,
                   help="path to a config: yaml, or a LazyConfig .py")
    p.add_argument("--output", required=True, help="folder for model.onnx (created if missing)")
    p.add_argument("--sample-image", metavar="FILE", type=readable_file,
                   help="an image to trace with and to check the exported graph on")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 14)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32; int8 (quantized convolutions, needs --calibration-images); bf16 "
                   "(runs in OpenVINO)")
    p.add_argument("--calibration-images", action="append", metavar="GLOB", default=[],
                   help="images to calibrate int8 on: a path or a quoted glob, e.g. "
                   "'val/*.jpg' (repeat the option for more)")
    p.add_argument("--calibration-count", type=int, default=DEFAULT_CALIBRATION_COUNT,
                   help="how many of them (spread over the sorted list)")
    p.add_argument("--force", action="store_true",
                   help="write a bf16 / int8 file even where this CPU lacks the arithmetic or "
                   "it measures too little gain (e.g. for another machine)")
    p.add_argument("opts", default=[], nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="config options, e.g. MODEL.WEIGHTS model_final.pth (a LazyConfig: "
                   "key=value, e.g. train.init_checkpoint=model_final.pth)")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from detectron2.utils.logger import setup_logger

    from solo_d2.checkpoint import WEIGHTS_ERRORS
    from solo_d2.engine import load_config
    from solo_d2.export import check_against_pytorch, export_from_config
    from solo_d2.export.low_precision import export_precision

    setup_logger(name="solo_d2")
    if args.calibration_images and args.precision != "int8":
        print(f"error: --calibration-images is for --precision int8, not {args.precision}",
              file=sys.stderr)
        return 1
    cfg = load_config(args.config_file, args.opts)
    try:
        if args.precision == "fp32":
            path = export_from_config(cfg, args.output, args.sample_image, opset=args.opset)
        else:
            res = export_precision(
                cfg, args.output, args.precision, args.sample_image, opset=args.opset,
                calibration_images=args.calibration_images,
                calibration_count=args.calibration_count, force=args.force)
            path = res["path"]
            if res["gain"]:
                print(res["gain"])
    except (ValueError, *WEIGHTS_ERRORS) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    if args.sample_image:
        print(check_against_pytorch(cfg, path, args.sample_image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
