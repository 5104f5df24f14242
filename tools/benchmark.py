#!/usr/bin/env python
"""Speed and memory benchmark of solo_d2 models, optionally against mmdet 3.3.0's SOLO.

    python tools/benchmark.py --config-file configs/SOLO_R50_1x.yaml MODEL.WEIGHTS ""
    python tools/benchmark.py --config-file configs/SOLO_R50_1x.yaml --vs-mmdet \
        --num-iters 5 --warmup 3 --json-out out/bench.json MODEL.WEIGHTS ""
    python tools/benchmark.py --config-file configs/SOLOv2_ViTDet_B_LSJ.py --skip infer,memory \
        --size 1024 1024 train.init_checkpoint=""

A LazyConfig (.py) takes key=value overrides (also in --vs-opts); --vs-mmdet takes yaml
configs (a LazyConfig builds the same model as its yaml twin). docs/LAZYCONFIG.md measures the
ViT and RegNet recipes' training step beside R50's with it.

Measures, on one synthetic image of ``--size H W`` (default 800 1333, i.e. already at test
scale; the model pads it to its size divisibility):

* inference latency (median over ``--num-iters`` after ``--warmup``), split into
  backbone+FPN (incl. normalise/pad), head forward and post-processing; images/s;
* one training step (forward + losses + backward + SGD step, batch 1, a few random gt
  instances), split into backbone+FPN, head, loss, backward+step;
* peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the process's RSS
  high-water mark (VmHWM), measured for each model and phase in a fresh subprocess
  so that the marks of different models/phases do not mix.

``--vs-mmdet`` builds mmdet's model from the matching mmdet config (the head's reference
config in ``MMDET_HEADS`` unless ``--mmdet-config``; randomly initialised by
solo_d2.testing.mmdet_reference), converts its weights with solo_d2's converter into ours,
and times both in the same process, alternating ours/theirs every iteration. With random weights the
category bias is shifted so that a chosen number of (cell, class) candidates pass score_thr:
regime "typical" (``--typical-candidates``, default 20) and "crowded"
(``--crowded-candidates``, default 1000). Outputs of both are compared on the benchmark image.

``--vs-opts "KEY VALUE ..."`` adds a second solo_d2 model, "alt": the same config and weights
with these overrides, measured the same way alongside (an ablation, e.g.
``--vs-opts "MODEL.SOLO.RECOMPUTE_NORM_ACT False"``); its outputs are compared with ours.

The measurements live in :mod:`solo_d2.benchmark` (one function each); this is the command line.
"""
import argparse
import json
import logging
import os
import shlex
import sys
from typing import Any, Dict, List, Optional, Union

import torch
from detectron2.config import CfgNode, get_cfg
from omegaconf import DictConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from solo_d2.benchmark import BenchmarkError  # noqa: E402
from solo_d2.benchmark.inputs import make_gt, make_image  # noqa: E402
from solo_d2.benchmark.measure import (  # noqa: E402
    measure_inference,
    measure_memory,
    measure_training,
    memory_phase,
)
from solo_d2.benchmark.memory import run_worker  # noqa: E402
from solo_d2.benchmark.models import (  # noqa: E402
    alt_cfg,
    amp_cfg,
    build_ours,
    build_pair,
    mmdet_config_path,
)
from solo_d2.benchmark.report import cpu_flags_text, log, machine_info  # noqa: E402
from solo_d2.benchmark.steps import pad_hw  # noqa: E402
from solo_d2.engine.configs import config_num_classes, config_weights  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    """The command line: options, then Detectron2 config overrides (``KEY VALUE ...``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--amp", default="", type=amp_name, metavar="{bf16,fp16}",
                   help='also measure "amp": our model, same weights, under autocast to this '
                        "dtype (inference through MODEL.SOLO.TEST.AMP), against ours in fp32")
    p.add_argument("--num-iters", type=int, default=5, help="timed inference iterations")
    p.add_argument("--warmup", type=int, default=3, help="untimed inference iterations")
    p.add_argument("--train-iters", type=int, default=3, help="timed training steps")
    p.add_argument("--train-warmup", type=int, default=2, help="untimed training steps")
    p.add_argument("--size", type=int, nargs=2, default=[800, 1333], metavar=("H", "W"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    p.add_argument("--vs-mmdet", action="store_true", help="compare with mmdet 3.3.0")
    p.add_argument("--mmdet-config", default=None, help="mmdet .py config (default: by head)")
    p.add_argument("--vs-opts", default="",
                   help='also measure "alt": our model, same weights, with these config '
                        'overrides (one quoted string "KEY VALUE ...")')
    p.add_argument("--regimes", default=None,
                   help="comma list of typical,crowded,as-is (default: typical,crowded with "
                        "--vs-mmdet or without MODEL.WEIGHTS, else as-is)")
    p.add_argument("--typical-candidates", type=int, default=20)
    p.add_argument("--crowded-candidates", type=int, default=1000)
    p.add_argument("--skip", default="", help="comma list of phases to skip: infer,train,memory")
    p.add_argument("--memory-phases", default="train",
                   help="comma list of phases whose peak memory is measured: train,infer")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json-out", default=None)
    p.add_argument("--mem-worker", default=None, help=argparse.SUPPRESS)  # side:phase
    p.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                   help="Detectron2 config overrides: KEY VALUE ...")
    return p


def amp_name(value: str) -> str:
    """--amp's value as MODEL.SOLO.TEST.AMP names it: bf16 -> bfloat16, fp16 -> float16; ""
    (the default: no amp model) stays ""."""
    names = {"": "","bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16"}
    if value not in names:
        raise argparse.ArgumentTypeError(f"--amp {value!r}; expected bf16 or fp16")
    return names[value]


def setup_cfg(args: argparse.Namespace) -> Union[CfgNode, DictConfig]:
    """The model's config: --config-file, then the overrides; no datasets. A LazyConfig
    (.py) is loaded as it is, its ``train.device`` set to --device."""

    import solo_d2
    from solo_d2.engine import load_config

    if args.config_file.endswith(".py"):
        cfg = load_config(args.config_file, args.opts)
        cfg.train.device = args.device
        return cfg
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.MODEL.DEVICE = args.device
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    if args.vs_mmdet:
        # the reference's semantics, so that the first-step losses can be compared: mmdet
        # trains cells whose instance mask vanishes at the mask resolution (dice target 0)
        cfg.MODEL.SOLO.DROP_VANISHED_TARGETS = False
    cfg.freeze()
    return cfg


def set_threads(n: int = 0) -> int:
    """torch's intra-op threads: ``n``, or all cores for 0; the number set."""
    n = n or os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def worker_command(args: argparse.Namespace, side: str, phase: str) -> List[str]:
    """This tool's command line measuring the peak memory of one model and phase in a fresh
    process (``--mem-worker side:phase``), with the settings of this run."""
    cmd = [sys.executable, os.path.abspath(__file__), "--config-file", args.config_file,
           "--device", args.device, "--size", str(args.size[0]), str(args.size[1]),
           "--warmup", "1", "--train-warmup", "1", "--threads", str(args.threads),
           "--seed", str(args.seed), "--mem-worker", f"{side}:{phase}"]
    if args.amp:
        cmd += ["--amp", args.amp]
    if args.mmdet_config:
        cmd += ["--mmdet-config", args.mmdet_config]
    if args.vs_mmdet:
        cmd.append("--vs-mmdet")  # same config semantics as the timed runs (setup_cfg)
    if args.vs_opts:
        cmd += ["--vs-opts", args.vs_opts]
    return cmd + list(args.opts)


def mem_worker(args: argparse.Namespace, cfg: CfgNode) -> Dict[str, Any]:
    """``--mem-worker side:phase``: one model ("ours", "mmdet" or "alt"), one phase ("infer"
    or "train", its warm-up count of iterations + 1), its memory marks (in this process)."""
    side, phase = args.mem_worker.split(":")
    steps = max(args.train_warmup if phase == "train" else args.warmup, 1) + 1
    return memory_phase(cfg, side, phase, tuple(args.size), steps, args.seed,
                        args.mmdet_config, args.vs_opts, args.amp)


def build_models(args: argparse.Namespace, cfg: CfgNode, report: Dict[str, Any]) -> Dict[str, Any]:
    """{"ours", ["mmdet"], ["alt"]: model}, all with the same weights (mmdet's random init
    converted into ours with --vs-mmdet); notes the mmdet config and --vs-opts in ``report``."""
    if args.vs_mmdet:
        report["mmdet_config"] = mmdet_config_path(cfg, args.mmdet_config)
        ours, mm = build_pair(cfg, report["mmdet_config"], args.seed)
        models = {"ours": ours, "mmdet": mm}
    else:
        models = {"ours": build_ours(cfg)}
    if args.vs_opts:
        alt = build_ours(alt_cfg(cfg, args.vs_opts), load_weights=False)
        alt.load_state_dict(models["ours"].state_dict())  # same weights
        models["alt"] = alt
        report["vs_opts"] = args.vs_opts
    if args.amp:
        amp = build_ours(amp_cfg(cfg, args.amp), load_weights=False)
        amp.load_state_dict(models["ours"].state_dict())  # same weights
        models["amp"] = amp
    return models


def run(args: argparse.Namespace, cfg: CfgNode, command: List[str]) -> Dict[str, Any]:
    """Every measurement not skipped; prints the tables, writes --json-out; the report."""
    skip = set(filter(None, args.skip.split(",")))
    device, (h, w) = args.device, args.size
    img = make_image(h, w, args.seed).to(device)
    report: Dict[str, Any] = {
        "config": args.config_file, "opts": args.opts, "device": device, "amp": args.amp,
        "size": [h, w], "padded": list(pad_hw(h, w)), "machine": machine_info(device),
        "num_iters": args.num_iters, "warmup": args.warmup,
        "train_iters": args.train_iters, "train_warmup": args.train_warmup,
        "command": shlex.join(command),
    }
    text = [f"# solo_d2 benchmark: {args.config_file} on {device} "
            f"({report['machine']['cpu']}, {cpu_flags_text(report['machine'])}, "
            f"{args.threads} threads, load {report['machine']['loadavg']}), image {h}x{w}"]
    models = build_models(args, cfg, report)
    ours = models["ours"]
    report["params_m"] = round(sum(p.numel() for p in ours.parameters()) / 1e6, 2)
    if hasattr(ours, "backbone"):  # the padded input the backbone sees (training pads more
        ours.train()               # with SOLO(train_fixed_size))
        with torch.no_grad():
            report["padded_train"] = list(ours.preprocess_image([{"image": img}]).tensor.shape[-2:])
        ours.eval()
    if args.vs_opts:
        text[0] += f"; alt = ours with {args.vs_opts}"
    if args.amp:
        text[0] += f"; amp = ours under {args.amp} autocast (ours: fp32)"
    regimes = (args.regimes.split(",") if args.regimes else
               (["typical", "crowded"] if args.vs_mmdet or not config_weights(cfg) else ["as-is"]))
    report["inference"] = {}
    if "infer" not in skip:
        candidates = {"typical": args.typical_candidates, "crowded": args.crowded_candidates}
        report["inference"], lines = measure_inference(
            models, img, regimes, candidates, args.warmup, args.num_iters, device, args.amp)
        text += lines
    if "train" not in skip:
        log("training")
        gt = make_gt(h, w, num_classes=config_num_classes(cfg), seed=args.seed)
        report["training"], lines = measure_training(
            models, img, gt, args.train_warmup, args.train_iters, device, args.amp)
        text += lines
    if "memory" not in skip:
        phases = [p for p in args.memory_phases.split(",") if p]
        report["memory"], ratios, table = measure_memory(
            list(models), phases, device,
            lambda side, phase: run_worker(worker_command(args, side, phase), f"{side}:{phase}"))
        for other, per_phase in ratios.items():
            report[f"memory_ratio_ours_over_{other}"] = per_phase
        text.append(table)
    report["machine"]["loadavg_end"] = list(os.getloadavg())
    print("\n".join(text))
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=1, default=float)
    return report


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """The command line (``argv``, default sys.argv[1:]); the report ({} for a worker)."""
    args = get_parser().parse_args(argv)
    if args.opts and args.opts[0] == "--":
        args.opts = args.opts[1:]
    args.threads = set_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but CUDA is not available")
    logging.getLogger("detectron2").setLevel(logging.WARNING)
    logging.getLogger("fvcore").setLevel(logging.WARNING)
    cfg = setup_cfg(args)
    try:
        if args.mem_worker:
            print(json.dumps(mem_worker(args, cfg)))
            return {}
        command = (["python", os.path.relpath(__file__, os.getcwd())]
                   + list(sys.argv[1:] if argv is None else argv))
        return run(args, cfg, command)
    except BenchmarkError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
