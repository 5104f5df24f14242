#!/usr/bin/env python
r"""Convert a torchvision ImageNet ResNet (e.g. resnet50-0676ba61.pth) to Detectron2's format.

    python tools/convert_torchvision_backbone.py resnet50-0676ba61.pth pretrained/R-50-tv.pkl

The output is the pickle Detectron2's tools/convert-torchvision-to-d2.py writes; use it as
MODEL.WEIGHTS (the .pkl extension matters: DetectionCheckpointer reads it as a model-zoo file
and matches the names by heuristics). Set MODEL.RESNETS.STRIDE_IN_1X1 False for it
(configs/Base-SOLO.yaml does).
"""
import os
import sys


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from solo_d2.utils.cli import tool_parser  # noqa: E402
from solo_d2.convert.safe_load import CheckpointReadError, load_torch_file  # noqa: E402
from solo_d2.convert.torchvision import convert_torchvision_resnet, save_d2_pickle  # noqa: E402


def main(argv=None) -> int:
    p = tool_parser(__doc__)
    p.add_argument("src", help="torchvision ResNet state dict (.pth)")
    p.add_argument("dst", help="output Detectron2 pickle (.pkl)")
    args = p.parse_args(argv)
    if not args.dst.endswith(".pkl"):
        print(f"error: {args.dst} must end with .pkl for DetectionCheckpointer", file=sys.stderr)
        return 1
    try:
        sd = load_torch_file(args.src)
    except CheckpointReadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        model = convert_torchvision_resnet(sd)
    except ValueError as e:
        print(f"error: {args.src}: {e}", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    save_d2_pickle(model, args.dst)
    print(f"wrote {args.dst} ({len(model)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
