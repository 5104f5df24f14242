#!/usr/bin/env python
"""ONNX Runtime (CPU provider) vs PyTorch latency of an exported SOLO-family model; with
--deploy, the deployment table: every runtime and precision side by side.

    python tools/benchmark_export.py --config-file configs/SOLOv2_R50_1x.yaml MODEL.WEIGHTS ""
    python tools/benchmark_export.py --config-file configs/SOLO_R50_1x.yaml --size 800 1333 \
        --candidates 20 --num-iters 3 --json-out out/export_bench.json MODEL.WEIGHTS ""

Exports the model (tools/export_model.py's graph), checks that ONNX Runtime gives PyTorch's
answer on one synthetic uint8 image of --size H W (at test scale already), then times both
end to end (normalisation to final full-size masks), alternating them every iteration, with
the same thread count. With random weights (MODEL.WEIGHTS "") the category bias is shifted
so that --candidates (cell, class) pairs reach the post-processing, and the masks are made
about half on. Prints the machine (CPU model, threads), the agreement and the times.

    python tools/benchmark_export.py --deploy --config-file configs/SOLOv2_R50_1x.yaml \
        --config-file configs/SOLO_R50_1x.yaml --config-file configs/SOLOv2_Light_R50_3x.yaml \
        --image-size 800 1333 --threads 2 --accuracy out/accuracy_solov2.json \
        --accuracy out/accuracy_solo.json --profile --json-out out/deploy.json

--deploy times each config's model on a synthetic --image-size photo resized by the config's
own test resize (SOLOv2-light: 448 short side), with random weights calibrated to
--candidates, as PyTorch fp32 and bf16 (autocast) and as the exported graph at fp32, int8 and
bf16 in ONNX Runtime and OpenVINO (--sides), alternating, all on --threads threads; one table
of seconds per image and speed-up against PyTorch fp32 in the same run, with the mask AP delta
of each side measured on a trained model of the same head (--accuracy: JSON files of
tools/evaluate_export.py). --profile adds where OpenVINO's int8 time goes and how close its
convolutions come to the CPU's int8 arithmetic limit. Prints the machine, its load and the date.
"""
import argparse
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from solo_d2.utils.cli import readable_file, tool_parser  # noqa: E402


def main(argv=None) -> int:
    p = tool_parser(__doc__)
    p.add_argument("--config-file", required=True, metavar="FILE", type=readable_file,
                   action="append", help="a config (repeat with --deploy for more rows)")
    p.add_argument("--size", type=int, nargs=2, default=[800, 1333], metavar=("H", "W"))
    p.add_argument("--deploy", action="store_true", help="the deployment table (see above)")
    p.add_argument("--image-size", type=int, nargs=2, default=[800, 1333], metavar=("H", "W"),
                   help="--deploy: the photo's size before each config's test resize")
    p.add_argument("--sides", nargs="+", help="--deploy: columns (default: all of "
                   "solo_d2.export_benchmark.deploy_table.DEPLOY_SIDES)")
    p.add_argument("--threads", type=int, default=2, help="--deploy: threads of every side")
    p.add_argument("--accuracy", action="append", default=[], metavar="JSON",
                   help="--deploy: tools/evaluate_export.py --json-out of a trained model")
    p.add_argument("--profile", action="store_true",
                   help="--deploy: OpenVINO int8 time per part and GMAC/s against the limit")
    p.add_argument("--candidates", type=int, default=20,
                   help="candidates to calibrate random weights to (ignored with weights)")
    p.add_argument("--num-iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json-out", help="write the results here as JSON")
    p.add_argument("opts", default=[], nargs=argparse.REMAINDER, metavar="KEY VALUE")
    args = p.parse_args(argv)
    if args.deploy:
        from solo_d2.export_benchmark.deploy_main import deploy_main

        return deploy_main(args)
    if len(args.config_file) > 1:
        p.error("several --config-file need --deploy")
    args.config_file = args.config_file[0]

    import torch

    from solo_d2 import get_solo_cfg
    from solo_d2.export_benchmark.export_latency import calibrate_candidates, measure_onnx_vs_pytorch
    from solo_d2.benchmark.inputs import make_image
    from solo_d2.benchmark.models import build_ours
    from solo_d2.benchmark.report import machine_info

    cfg = get_solo_cfg(args.config_file, [*args.opts, "MODEL.DEVICE", "cpu"])
    model = build_ours(cfg)
    image = make_image(*args.size).to(torch.uint8)
    reached = None
    if not cfg.MODEL.WEIGHTS:
        reached = calibrate_candidates(model, image, args.candidates)
    with tempfile.TemporaryDirectory() as tmp:
        res = measure_onnx_vs_pytorch(model, image, tmp, args.warmup, args.num_iters)
    res.update(machine=machine_info("cpu"), config=args.config_file, size=args.size,
               candidates=reached)
    par = res["parity"]
    print(f"machine: {res['machine']['cpu']}, {res['machine']['torch_threads']} threads, "
          f"torch {res['machine']['torch']}")
    print(f"{args.config_file} at {args.size[0]}x{args.size[1]}, candidates {reached}: "
          f"instances PyTorch {par['count_pytorch']} / ONNX Runtime {par['count_onnx']}, "
          f"same classes {par['same_classes']}, max score diff {par['max_score_diff']:.2e}, "
          f"mask pixels equal {100 * par['pixel_agreement']:.4f} %")
    print(f"PyTorch {res['pytorch']['total']:.3f} s, ONNX Runtime {res['onnxruntime']['total']:.3f} s"
          f" (PyTorch / ORT = {res['ratio_pytorch_over_ort']:.2f}); runs "
          f"{res['pytorch']['all_totals']} / {res['onnxruntime']['all_totals']}; export "
          f"{res['export_s']:.1f} s, {res['onnx_mib']:.0f} MiB")
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
