#!/usr/bin/env python
r"""Download weights into the cache ahead of time, or say where a file must be put so that a
name resolves on a machine without network (docs/MODEL_ZOO.md, "Offline").

    python tools/download_weights.py solo_d2://SOLOv2_R50_3x torchvision://resnet50
    python tools/download_weights.py --where solo_d2://SOLOv2_R50_3x

Each argument is a name (solo_d2://<config>, torchvision://<resnet>, open-mmlab://<name>) or an
http(s) URL. Without --where: downloaded once, verified, converted and cached, exactly as
MODEL.WEIGHTS would (then copy the cache folder, $FVCORE_CACHE, to the offline machines).
With --where: nothing is downloaded; prints the URL and the path where the file is looked for.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402

from solo_d2.utils.cli import tool_parser  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = tool_parser(__doc__)
    p.add_argument("weights", nargs="+", metavar="NAME_OR_URL",
                   help="e.g. solo_d2://SOLOv2_R50_3x, torchvision://resnet50, https://...")
    p.add_argument("--where", action="store_true",
                   help="print each URL and where its file goes; download nothing")
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from detectron2.utils.logger import setup_logger

    from solo_d2.checkpoint import WEIGHTS_ERRORS, cached_path, loadable_weights
    from solo_d2.checkpoint.catalog import NAME_SCHEMES, resolve_weights_name

    setup_logger(name="solo_d2")
    status = 0
    for w in args.weights:
        try:
            url = resolve_weights_name(w) if w.startswith(NAME_SCHEMES) else w
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{w!r}: not a weights name ({', '.join(NAME_SCHEMES)}) "
                                 "or an http(s):// URL")
            if args.where:
                print(f"{w}\n  download: {url}\n  put it at: {cached_path(url)}")
            else:
                print(f"{w}: {loadable_weights(url)}")
        except (ValueError, *WEIGHTS_ERRORS) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
