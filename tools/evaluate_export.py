#!/usr/bin/env python
r"""COCO AP of exported models (fp32, bf16, int8; ONNX Runtime, OpenVINO) beside the PyTorch
model they come from, on a registered dataset, through Detectron2's COCOEvaluator.

    python tools/evaluate_export.py --config-file configs/quick_schedules/SOLOv2_R18_shapes.yaml \
        --onnx export/fp32/model.onnx --onnx export/int8/model.onnx --onnx export/bf16/model.onnx \
        --backend onnxruntime --backend openvino --pytorch-bf16 --json-out out/accuracy.json \
        MODEL.WEIGHTS output/qs_solov2/model_final.pth

Evaluates PyTorch fp32 (MODEL.WEIGHTS, the reference), PyTorch under bf16 autocast with
--pytorch-bf16 (MODEL.SOLO.TEST.AMP bfloat16), and every --onnx file in every --backend
(default: each file's default runtime; a bf16 file is skipped in ONNX Runtime, which has no
bf16 kernels), all on the same batches of the config's test loader (--dataset: another
registered dataset). Prints mask and box AP, each model's mask AP minus PyTorch fp32's, and
the agreement of its instances with PyTorch fp32's (matched, identical, mean mask IoU, score
difference) and its seconds per image; --json-out keeps it all (tools/benchmark_export.py
--accuracy reads it).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from solo_d2.utils.cli import readable_file, tool_parser  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = tool_parser(__doc__)
    p.add_argument("--config-file", required=True, metavar="FILE", type=readable_file,
                   help="the config the files were exported from (yaml or LazyConfig .py)")
    p.add_argument("--onnx", action="append", metavar="FILE", type=readable_file, default=[],
                   help="an exported model.onnx (repeat the option for more)")
    p.add_argument("--backend", action="append", choices=("onnxruntime", "openvino"),
                   help="runtime(s) to evaluate each file in (repeat; default: each file's "
                   "default runtime)")
    p.add_argument("--threads", type=int, help="threads of the runtimes (default: every core)")
    p.add_argument("--pytorch-bf16", action="store_true",
                   help="also evaluate PyTorch under bf16 autocast (MODEL.SOLO.TEST.AMP)")
    p.add_argument("--dataset", help="registered dataset (default: the config's first test one)")
    p.add_argument("--agreement-threshold", type=float, default=0.3,
                   help="instances scoring at least this count in the mask agreement")
    p.add_argument("--json-out", metavar="FILE", help="write the results here as JSON")
    p.add_argument("opts", default=[], nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="config options, e.g. MODEL.WEIGHTS model_final.pth")
    return p


def build_models(args, cfg) -> dict:
    """name -> model: PyTorch fp32 (and bf16), then each file in each backend."""
    from solo_d2.export_benchmark.export_accuracy import REFERENCE, ExportedModel
    from solo_d2.benchmark.models import amp_cfg, build_ours
    from solo_d2.export.backends import open_backend
    from solo_d2.export.precision import file_precision, read_metadata

    models = {REFERENCE: build_ours(cfg)}
    if args.pytorch_bf16:
        models["pytorch bf16"] = build_ours(amp_cfg(cfg, "bfloat16"))
    for path in args.onnx:
        precision = file_precision(read_metadata(path))
        for backend in args.backend or [None]:
            if backend == "onnxruntime" and precision == "bf16":
                continue  # it would run fp32: the fp32 file's numbers
            runner = open_backend(path, backend, args.threads)
            name = f"{runner.name} {precision}"
            if runner.runs_at != precision:
                name += f" (run at {runner.runs_at})"
            if name in models:
                name = f"{name} ({path})"
            models[name] = ExportedModel(runner)
    return models


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    from detectron2.utils.logger import setup_logger

    from solo_d2.benchmark import BenchmarkError
    from solo_d2.export_benchmark.export_accuracy import (
        REFERENCE,
        evaluate_side_by_side,
        format_accuracy_table,
    )
    from solo_d2.benchmark.report import machine_info
    from solo_d2.checkpoint import WEIGHTS_ERRORS
    from solo_d2.engine import load_config
    from solo_d2.engine.configs import config_weights

    setup_logger(name="solo_d2")
    cfg = load_config(args.config_file, args.opts)
    if not config_weights(cfg):
        print("error: give the trained weights the files were exported from (MODEL.WEIGHTS / "
              "train.init_checkpoint): AP of an untrained model means nothing", file=sys.stderr)
        return 1
    try:
        models = build_models(args, cfg)
        results = evaluate_side_by_side(cfg, models, args.dataset, args.agreement_threshold)
    except (ValueError, BenchmarkError, *WEIGHTS_ERRORS) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    results["_meta"].update(machine=machine_info("cpu"), config=args.config_file,
                            head=type(models[REFERENCE].head).__name__, onnx=args.onnx,
                            threads=args.threads)
    print(format_accuracy_table(results))
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
