#!/usr/bin/env python
r"""Convert an mmdetection (2.x or 3.x) SOLO / Decoupled SOLO / SOLOv2 checkpoint to solo_d2.

    python tools/convert_mmdet_checkpoint.py solo_r50_fpn_1x_coco.pth solo_r50_1x.pth \
        --config-out solo_r50_1x.yaml [--mmdet-config solo_r50_fpn_1x_coco.py]
    python tools/convert_mmdet_checkpoint.py solo_r50_fpn_1x_coco.pth solo_r50_1x.pth \
        --config-out solo_r50_1x.py

Writes DST (``{"model", "__author__", "matching_heuristics": False[, "thing_classes"]}``,
loadable by DetectionCheckpointer with no missing or unexpected keys), the config that
rebuilds the model, by the extension of --config-out: a yaml (``get_cfg();
add_solo_config(cfg); cfg.merge_from_file(yaml)``) or a LazyConfig (.py; ``LazyConfig.load``,
``train_net.py --config-file X.py``), and, when
the checkpoint names its classes, ``DST-without-extension.classes.json``. The mmdet config is
read from the checkpoint (meta["cfg"] / meta["config"]) or --mmdet-config, with python's
``ast`` only: nothing in it is executed. The checkpoint is read without running code it names
(tensors and plain data; other objects stay inert stand-ins) unless --trusted says the file
comes from a source you trust. Every failure is one ``error:`` line and exit status 1.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from solo_d2.utils.cli import tool_parser  # noqa: E402
from solo_d2.checkpoint import verify_loadable  # noqa: E402
from solo_d2.convert.mmdet import (  # noqa: E402
    MMDetConversionError,
    convert_mmdet_checkpoint,
    write_outputs,
)
from solo_d2.lazy import save_lazy_config, yaml_to_lazy  # noqa: E402


def _lazy_header(cfg, dst: str, config_out: str) -> str:
    """The docstring of the LazyConfig written for a converted checkpoint."""
    return (
        f"solo_d2 LazyConfig of the converted mmdet checkpoint {os.path.basename(dst)} "
        f"({cfg.MODEL.SOLO.HEAD_NAME}, {cfg.MODEL.SOLO.NUM_CLASSES} classes), written by "
        "tools/convert_mmdet_checkpoint.py.\n\n"
        f"    python train_net.py --config-file {os.path.basename(config_out)} --eval-only\n"
        "\nName your data with dataloader.register_coco_instances and "
        "dataloader.{train,test}.dataset.names (docs/LAZYCONFIG.md)."
    )


def main(argv=None) -> int:
    p = tool_parser(__doc__)
    p.add_argument("src", help="mmdet checkpoint (.pth)")
    p.add_argument("dst", help="output solo_d2 checkpoint (.pth)")
    p.add_argument("--config-out", help="output config: a Detectron2 yaml, or a LazyConfig "
                   "when it ends with .py (None: DST with .yaml)")
    p.add_argument("--mmdet-config", help="mmdet .py config (None: the one in the checkpoint)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip building the model to check the converted keys and shapes")
    p.add_argument("--trusted", action="store_true",
                   help="the checkpoint comes from a source you trust: unpickle it fully, which "
                   "runs any code it names (only needed for legacy-format files that hold "
                   "objects other than tensors and plain data)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config_out = args.config_out or os.path.splitext(args.dst)[0] + ".yaml"
    for out in (args.dst, config_out):
        if os.path.isdir(out):
            print(f"error: {out} is a directory; give a file name", file=sys.stderr)
            return 1
    try:
        ckpt, cfg, classes = convert_mmdet_checkpoint(
            args.src, mmdet_config=args.mmdet_config, weights_path=args.dst, trusted=args.trusted
        )
        if not args.no_verify:
            verify_loadable(cfg, ckpt["model"])
    except MMDetConversionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    lazy_out = config_out if config_out.endswith(".py") else None
    try:
        lazy_cfg = yaml_to_lazy(cfg) if lazy_out else None
    except ValueError as e:  # a config a LazyConfig cannot express
        print(f"error: {e}", file=sys.stderr)
        return 1
    written = write_outputs(ckpt, cfg, args.dst, None if lazy_out else config_out)
    if lazy_out:
        written.insert(1, save_lazy_config(lazy_cfg, lazy_out, _lazy_header(cfg, args.dst,
                                                                            lazy_out)))
    for path in written:
        print(f"wrote {path}")
    print(f"{cfg.MODEL.SOLO.HEAD_NAME}, R{cfg.MODEL.RESNETS.DEPTH}, "
          f"{cfg.MODEL.SOLO.NUM_CLASSES} classes{'' if classes else ' (no class names)'}, "
          f"{len(ckpt['model'])} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
