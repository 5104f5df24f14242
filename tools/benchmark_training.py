#!/usr/bin/env python
"""Where a training step's time goes, for variants of one yaml config, measured side by side.

    python tools/benchmark_training.py --config-file configs/quick_schedules/SOLOv2_R18_shapes.yaml \\
        --variant "fp32=SOLVER.AMP.ENABLED False" --variant "bf16=SOLVER.AMP.ENABLED True" \\
        --steps 20 --warmup 3

Each variant is the config with its own ``KEY VALUE`` overrides (after the shared ones given
at the end of the command line), built by solo_d2's ``SOLOTrainer`` as ``train_net.py`` builds
it: the same model, training loader (real images through the mapper, the configured data
workers), optimizer (gradient clipping included) and autocast dtype (``SOLVER.AMP``). The
variants take turns step by step, in an order that reverses every round, so that a change in
the machine's load falls on all of them alike. Per variant it prints the median seconds of
each phase of a step (data: the next batch from the loader; forward with the losses;
backward; optimizer: zero_grad, clipping and the update), of the whole step, and the
process's CPU seconds per step (all its threads: the work, whatever the load; the data
workers are other processes and not counted), images per second and each variant's time
over the first one's. The machine (CPU model, bf16 / AMX flags, cores, torch threads, load
average before and after) is printed with it.

The first variant is the reference; without --variant: "fp32" (SOLVER.AMP.ENABLED False) and
"bf16" (SOLVER.AMP.ENABLED True). Models are not trained to the same state (each variant
trains its own), which a step's time does not depend on at this scale.
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Tuple

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from solo_d2.benchmark.report import cpu_flags_text, log, machine_info  # noqa: E402
from solo_d2.benchmark.timing import PhaseClock, run_alternating  # noqa: E402
from solo_d2.engine import SOLOTrainer, get_solo_cfg  # noqa: E402
from solo_d2.layers.precision import autocast_for, train_amp_dtype  # noqa: E402

PHASES = ["data", "forward", "backward", "optimizer"]
DEFAULT_VARIANTS = ["fp32=SOLVER.AMP.ENABLED False", "bf16=SOLVER.AMP.ENABLED True"]


def variant(text: str) -> Tuple[str, List[str]]:
    """``NAME=KEY VALUE ...`` -> (name, overrides)."""
    name, sep, opts = text.partition("=")
    words = shlex.split(opts)
    if not sep or not name.strip() or len(words) % 2:
        raise argparse.ArgumentTypeError(
            f"--variant {text!r}; expected NAME=KEY VALUE ... (pairs), e.g. "
            "\"bf16=SOLVER.AMP.ENABLED True\"")
    return name.strip(), words


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--config-file", required=True, help="a yaml config (train_net.py's)")
    p.add_argument("--variant", type=variant, action="append", default=None,
                   metavar="NAME=KEY VALUE ...",
                   help="a variant and its overrides; repeat for each (the first is the "
                        "reference). Default: " + " and ".join(repr(v) for v in DEFAULT_VARIANTS))
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads (0: torch's default, one per core)")
    p.add_argument("--json-out", default=None, help="also write the results here")
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="overrides shared by all variants: KEY VALUE ...")
    return p


def step_runner(trainer: SOLOTrainer) -> Tuple[Callable[[], Dict[str, float]], List[float]]:
    """A function running one training step of ``trainer``'s model, optimizer and loader as
    its step trainer does, timed by phase; and the list it appends each step's process CPU
    seconds to."""
    inner = trainer._trainer  # SimpleTrainer / AMPTrainer / AutocastTrainer: what train() runs
    model, optimizer = inner.model, inner.optimizer
    cfg = trainer.cfg
    device = torch.device(cfg.MODEL.DEVICE).type
    dtype = train_amp_dtype(cfg, device)
    data_iter = iter(inner.data_loader)
    scaler = getattr(inner, "grad_scaler", None)
    cpu: List[float] = []

    def run() -> Dict[str, float]:
        clock = PhaseClock(device)
        c0 = time.process_time()
        clock.start()
        data = next(data_iter)
        clock.lap("data")
        with autocast_for(device, dtype):
            losses = sum(model(data).values())
        clock.lap("forward")
        (scaler.scale(losses) if scaler is not None else losses).backward()
        clock.lap("backward")
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad()
        clock.lap("optimizer")
        cpu.append(time.process_time() - c0)
        return clock.times

    return run, cpu


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    """Build every variant's trainer, run the alternating steps; the results by variant."""
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    variants = args.variant or [variant(v) for v in DEFAULT_VARIANTS]
    runners, cpu, batch = {}, {}, {}
    scratch = tempfile.mkdtemp(prefix="benchmark_training.")  # the trainers' OUTPUT_DIRs
    for name, opts in variants:
        cfg = get_solo_cfg(args.config_file, ["OUTPUT_DIR", os.path.join(scratch, name),
                                              *args.opts, *opts])
        log(f"building {name}: {' '.join(opts) or '(the config as is)'}")
        trainer = SOLOTrainer(cfg)
        runners[name], cpu[name] = step_runner(trainer)
        batch[name] = cfg.SOLVER.IMS_PER_BATCH
    info = machine_info(device="cpu")
    log(f"{args.warmup} + {args.steps} steps of each of {', '.join(runners)}, alternating")
    try:
        res = run_alternating(runners, args.warmup, args.steps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info["loadavg_after"] = list(os.getloadavg())
    for name in runners:
        res[name]["cpu"] = statistics.median(cpu[name][args.warmup:])
        res[name]["images_per_s"] = batch[name] / res[name]["total"]
        res[name]["overrides"] = dict(variants)[name]
    return {"machine": info, "steps": args.steps, "warmup": args.warmup, "results": res}


def format_report(out: Dict[str, Any]) -> str:
    """The machine and one markdown table: variants as columns, phases as rows."""
    m, res = out["machine"], out["results"]
    names = list(res)
    ref = names[0]
    lines = [
        f"CPU: {m['cpu']} ({m['cpu_count']} cores; {cpu_flags_text(m)}), torch {m['torch']}, "
        f"{m['torch_threads']} torch threads; load average {m['loadavg'][0]:.2f} before, "
        f"{m['loadavg_after'][0]:.2f} after",
        f"median of {out['steps']} steps per variant (after {out['warmup']} untimed), "
        "variants alternating",
        "",
        "| s / step | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for p in PHASES + ["total", "cpu"]:
        label = {"total": "**step**", "cpu": "process CPU s"}.get(p, p)
        lines.append(f"| {label} | " + " | ".join(f"{res[n][p]:.3f}" for n in names) + " |")
    lines.append("| images / s | " + " | ".join(f"{res[n]['images_per_s']:.2f}" for n in names)
                 + " |")
    lines.append(f"| step / {ref}'s | "
                 + " | ".join(f"{res[n]['total'] / res[ref]['total']:.2f}x" for n in names) + " |")
    lines += [""] + [f"{n}: {' '.join(res[n]['overrides']) or '(no overrides)'}" for n in names]
    return "\n".join(lines) + "\n"


def main(argv=None) -> Dict[str, Any]:
    args = get_parser().parse_args(argv)
    out = measure(args)
    print(format_report(out))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
