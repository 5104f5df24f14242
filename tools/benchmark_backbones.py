#!/usr/bin/env python
r"""The cost of a training iteration of SOLOv2 on different Detectron2 backbones, side by side:
tools/benchmark.py's training measurement (batch 1, 5 instances, SGD; fp32, or autocast with
--amp) of each LazyConfig in turn, on the same synthetic image, from scratch weights.

    python tools/benchmark_backbones.py --size 1024 1024 --train-iters 2 \
        --json-out output/bench/backbones.json

The default configs are the LSJ recipes, whose training batches are 1024 x 1024 whatever the
image (SOLO's train_fixed_size; the ViT pads to a 1024 square): ResNet-50-FPN, RegNetY-4GF-FPN
and ViTDet's ViT-B + SimpleFeaturePyramid, all with SOLOv2_R50_1x's head. The table gives
each phase's median seconds and the total relative to the first config.
"""
import argparse
import json
import os
import sys
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

import benchmark  # noqa: E402

CONFIGS = ["configs/SOLOv2_R50_LSJ_200e.py", "configs/SOLOv2_RegNetY_4GF_LSJ.py",
           "configs/SOLOv2_ViTDet_B_LSJ.py"]
PHASES = ("backbone_fpn", "head", "loss", "backward_step", "total")


def main(argv: Optional[List[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=CONFIGS, help="LazyConfigs (or yamls)")
    p.add_argument("--size", type=int, nargs=2, default=[1024, 1024], metavar=("H", "W"))
    p.add_argument("--train-iters", type=int, default=2, help="timed steps per config")
    p.add_argument("--train-warmup", type=int, default=1, help="untimed steps per config")
    p.add_argument("--amp", default="", help="bf16 or fp16: the step under autocast")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--json-out", default=None)
    args = p.parse_args(argv)
    results = {}
    for config in args.configs:
        lazy = config.endswith(".py")
        argv_one = ["--config-file", os.path.join(ROOT, config) if not os.path.isabs(config)
                    else config, "--skip", "infer,memory", "--size", *map(str, args.size),
                    "--train-warmup", str(args.train_warmup), "--train-iters",
                    str(args.train_iters), "--threads", str(args.threads)]
        if args.amp:
            argv_one += ["--amp", args.amp]
        argv_one += ["train.init_checkpoint="] if lazy else ["MODEL.WEIGHTS", ""]
        report = benchmark.main(argv_one)
        side = "amp" if args.amp else "ours"
        results[config] = {"params_m": report["params_m"], "padded": report["padded_train"],
                           "times": report["training"]["times"][side],
                           "machine": report["machine"]}
    first = next(iter(results.values()))["times"]["total"]
    lines = [f"training step, batch 1, image {args.size[0]}x{args.size[1]}, "
             f"{'autocast ' + args.amp if args.amp else 'fp32'}, median of {args.train_iters} "
             f"after {args.train_warmup} warm-up",
             "| config | params (M) | input | " + " | ".join(f"{x} (s)" for x in PHASES)
             + " | total / first |", "|---" * (len(PHASES) + 4) + "|"]
    for config, r in results.items():
        t = r["times"]
        lines.append(f"| {os.path.basename(config)} | {r['params_m']} | "
                     f"{r['padded'][0]}x{r['padded'][1]} | "
                     + " | ".join(f"{t[x]:.2f}" for x in PHASES) + f" | {t['total'] / first:.2f}x |")
    loads = [r["machine"]["loadavg"] for r in results.values()]
    lines.append(f"load average at the start of each config: {loads}")
    print("\n".join(lines))
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1, default=float)
    return results


if __name__ == "__main__":
    main()
