#!/usr/bin/env python
r"""Panoptic SOLOv2 against Detectron2's Panoptic FPN at the same training time, on the built-in
solo_shapes_panoptic data (R18-FPN from scratch, the quick-start recipes), through train_net.py.

    python tools/benchmark_panoptic.py --budget-min 10 --out output/bench/panoptic

For each contender (--contenders; default: panoptic SOLOv2 with the stuff branch parallel to
the mask-feature branch, the same sharing the mask-feature trunk, and Panoptic FPN):

1. time per training iteration: ``--time-iters`` iterations (the first ``--time-warmup`` left
   out), the median of Detectron2's per-iteration ``time`` in metrics.json;
2. training for the budget: ``MAX_ITER`` = budget / that time (lr / 10 at 80 %, warm-up at most
   a fifth), then Detectron2's panoptic evaluation on the first ``--val-images`` images of
   solo_shapes_panoptic_val (registered from the command line, DATASETS.REGISTER_COCO_PANOPTIC).

It prints a markdown table (PQ, PQ_th, PQ_st, mask AP, stuff mIoU, s/iter, iterations, the
training time actually spent) with the machine (CPU, cores, load average before and after)
and writes it with every command to ``<out>/results.json``. On a shared machine the times
move with the load: compare contenders of one run, and say the load.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SOLO = "configs/quick_schedules/SOLOv2_Panoptic_R18_shapes.yaml"
CONTENDERS = {
    "solov2_parallel": (SOLO, []),
    "solov2_shared_trunk": (SOLO, ["MODEL.SEM_SEG_HEAD.IN_FEATURES", "['mask_features']"]),
    "panoptic_fpn": ("configs/quick_schedules/PanopticFPN_R18_shapes.yaml", []),
}
METRICS = [("PQ", "panoptic_seg/PQ"), ("PQ_th", "panoptic_seg/PQ_th"),
           ("PQ_st", "panoptic_seg/PQ_st"), ("mask AP", "segm/AP"), ("stuff mIoU", "sem_seg/mIoU")]


def _metrics(path: str) -> List[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _run(config: str, opts: List[str], out: str, log: str) -> float:
    """train_net.py with ``opts`` into ``out``; returns the wall time; raises on failure."""
    cmd = [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file",
           os.path.join(ROOT, config), *opts, "OUTPUT_DIR", out]
    os.makedirs(os.path.dirname(log), exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed (exit {proc.returncode}); "
                         f"see {log}")
    return time.perf_counter() - start


def val_subset(out: str, num: int) -> List[str]:
    """The first ``num`` images of solo_shapes_panoptic_val as a COCO panoptic json in ``out``
    (generated first if needed); returns the REGISTER_COCO_PANOPTIC entry."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    import solo_d2  # noqa: F401  registers the built-in datasets

    DatasetCatalog.get("solo_shapes_panoptic_val")  # generates the split once
    meta = MetadataCatalog.get("solo_shapes_panoptic_val")
    with open(meta.panoptic_json) as f:
        data = json.load(f)
    data["images"] = data["images"][:num]
    keep = {im["id"] for im in data["images"]}
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] in keep]
    path = os.path.join(out, f"val_{num}.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return [f"bench_panoptic_val_{num}", meta.image_root, meta.panoptic_root, path]


def main(argv: Optional[List[str]] = None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-min", type=float, default=10.0,
                   help="training minutes per contender (the quick start's 10)")
    p.add_argument("--time-iters", type=int, default=30, help="iterations of the timing run")
    p.add_argument("--time-warmup", type=int, default=5, help="of those, left out")
    p.add_argument("--val-images", type=int, default=200, help="evaluated images (<= 200)")
    p.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    p.add_argument("--out", default="output/bench/panoptic")
    p.add_argument("--min-pq", type=float, default=None,
                   help="exit with status 1 when the first contender's PQ is below this (the "
                   "quick start's PQ floor, docs/PANOPTIC.md)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="more KEY VALUE options for all")
    args = p.parse_args(argv)
    from solo_d2.benchmark.report import machine_info

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    entry = val_subset(out, args.val_images)
    register = ["DATASETS.REGISTER_COCO_PANOPTIC", repr([entry]), "DATASETS.TEST",
                f"('{entry[0]}',)"]
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_info("cpu"), "budget_min": args.budget_min, "results": {}}
    for name in args.contenders:
        config, extra = CONTENDERS[name]
        common = [*extra, *args.opts, "SOLVER.LOG_PERIOD", "1", "TEST.EVAL_PERIOD", "0",
                  "SOLVER.CHECKPOINT_PERIOD", "1000000"]
        timing_dir = os.path.join(out, name, "timing")
        _run(config, [*common, "SOLVER.MAX_ITER", str(args.time_iters), "SOLVER.STEPS", "()",
                      "DATASETS.TEST", "()"], timing_dir, timing_dir + ".log")
        times = [m["time"] for m in _metrics(os.path.join(timing_dir, "metrics.json"))
                 if "time" in m and m.get("iteration", 0) >= args.time_warmup]
        s_iter = statistics.median(times)
        iters = max(int(args.budget_min * 60 / s_iter), 10)
        train_dir = os.path.join(out, name, "train")
        opts = [*common, *register, "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS",
                f"({int(0.8 * iters)},)", "SOLVER.WARMUP_ITERS", str(min(200, iters // 5))]
        wall = _run(config, opts, train_dir, train_dir + ".log")
        rows = _metrics(os.path.join(train_dir, "metrics.json"))
        final = {k: v for m in rows for k, v in m.items()}
        train_times = [m["time"] for m in rows if "time" in m]
        report["results"][name] = {
            "config": config, "opts": opts, "s_per_iter_timing": s_iter, "iterations": iters,
            "s_per_iter_training": statistics.median(train_times),
            "training_s": sum(train_times), "wall_s": wall,
            **{label: final.get(key) for label, key in METRICS},
        }
    report["machine"]["loadavg_after"] = list(os.getloadavg())
    lines = ["| contender | PQ | PQ_th | PQ_st | mask AP | stuff mIoU | s/iter | iterations | "
             "training (min) |", "|---" * 9 + "|"]
    for name, r in report["results"].items():
        cells = [f"{r[k]:.1f}" if r[k] is not None else "–" for k, _ in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {r['s_per_iter_training']:.3f} | "
                     f"{r['iterations']} | {r['training_s'] / 60:.1f} |")
    m = report["machine"]
    lines.append(f"\n{m['cpu']}, {m['cpu_count']} cores, torch {m['torch']}, load average "
                 f"{m['loadavg'][0]:.1f} before, {m['loadavg_after'][0]:.1f} after; "
                 f"{report['date']}; budget {args.budget_min} min per contender")
    report["table"] = "\n".join(lines)
    print(report["table"])
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    first = report["results"][args.contenders[0]]
    if args.min_pq is not None and (first["PQ"] is None or first["PQ"] < args.min_pq):
        sys.exit(f"error: {args.contenders[0]} PQ {first['PQ']} is below --min-pq {args.min_pq}")
    return report


if __name__ == "__main__":
    main()
