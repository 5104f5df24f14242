"""tools/benchmark.py and solo_d2.benchmark on a tiny model (R18, FPN 64, small grids) vs mmdet."""
import json
import os
import sys

import pytest

from conftest import ROOT, require_mmdet
from solo_d2.benchmark import BenchmarkError
from solo_d2.benchmark.calibration import (
    DYNAMIC_KERNEL_ABS_LOGIT,
    MASK_CALIBRATION,
    adjust_masks,
    calibrate,
    mask_calibration,
)
from solo_d2.benchmark.inputs import make_image
from solo_d2.benchmark.models import build_ours
from solo_d2.benchmark.timing import saved_for_backward_mib
from solo_d2.convert.mmdet import MMDET_HEADS
from solo_d2.testing import full_mask_logits

sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark  # noqa: E402


def _write_tiny_configs(tmp, head_type: str):
    """A tiny mmdet config of ``head_type`` and its solo_d2 yaml; (tmp, yaml, mmdet .py)."""
    R = require_mmdet()
    from solo_d2.convert.mmdet import mmdet_config_to_d2

    mm_cfg = R.small_solo_config(head_type)
    mm_path = os.path.join(tmp, "tiny_mmdet.py")
    with open(mm_path, "w") as f:
        f.write(R.config_text(mm_cfg))
    cfg, _ = mmdet_config_to_d2(mm_cfg)
    cfg.MODEL.WEIGHTS = ""
    yaml_path = os.path.join(tmp, "tiny.yaml")
    with open(yaml_path, "w") as f:
        f.write(cfg.dump())
    return str(tmp), yaml_path, mm_path


@pytest.fixture(scope="module")
def tiny_configs(tmp_path_factory):
    return _write_tiny_configs(tmp_path_factory.mktemp("bench"), "SOLOHead")


def test_end_to_end_vs_mmdet(tiny_configs, capsys):
    tmp, yaml_path, mm_path = tiny_configs
    out = os.path.join(tmp, "bench.json")
    report = benchmark.main([
        "--config-file", yaml_path, "--vs-mmdet", "--mmdet-config", mm_path,
        "--size", "64", "96", "--warmup", "0", "--num-iters", "1",
        "--train-warmup", "1", "--train-iters", "1", "--typical-candidates", "5",
        "--crowded-candidates", "40", "--skip", "memory", "--json-out", out,
        "MODEL.WEIGHTS", ""])
    printed = capsys.readouterr().out
    assert "mmdet/ours" in printed and "output check" in printed
    with open(out) as f:
        saved = json.load(f)
    assert saved["padded"] == [64, 96]
    for regime in ("typical", "crowded"):
        e = report["inference"][regime]
        assert e["check"]["identical"], e["check"]
        assert e["times"]["ours"]["total"] > 0 and e["times"]["mmdet"]["total"] > 0
    typical, crowded = report["inference"]["typical"], report["inference"]["crowded"]
    assert 5 <= typical["candidates"] < crowded["candidates"]  # calibrated bias shifts
    assert crowded["candidates"] >= 40
    first = report["training"]["first_step_losses"]
    for k in ("loss_mask", "loss_cls"):  # same weights and gt: same losses
        assert first["ours"][k] == pytest.approx(first["mmdet"][k], rel=1e-3)
    # Detectron2's FrozenBatchNorm2d is x * scale + shift with constant scale: it keeps nothing
    # for backward; mmdet's BatchNorm in eval mode keeps its input
    saved = report["training"]["backbone_saved_for_backward_mib"]
    assert 0 < saved["ours"] < saved["mmdet"]


def test_saved_for_backward_counts_what_autograd_keeps():
    import torch

    x = torch.ones(1024, 256, requires_grad=True)  # 1 MiB of float32
    assert saved_for_backward_mib(lambda: x * 2.0) == 0  # a constant factor: nothing
    assert saved_for_backward_mib(lambda: x.exp()) == pytest.approx(1.0)  # its output
    # x * y keeps both factors; x.sin() keeps x again, which is counted once
    y = torch.ones(1024, 256, requires_grad=True)
    both = saved_for_backward_mib(lambda: (x * y).sum() + x.sin().sum())
    assert both == pytest.approx(2.0)


def test_solov2_vs_mmdet(tmp_path, capsys):
    """SOLOv2 has no mask bias: the calibration scales its dynamic-kernel conv instead, on
    both sides alike, and the outputs must still be identical to mmdet's SOLOV2Head."""
    tmp, yaml_path, mm_path = _write_tiny_configs(tmp_path, "SOLOV2Head")
    report = benchmark.main([
        "--config-file", yaml_path, "--vs-mmdet", "--mmdet-config", mm_path,
        "--size", "64", "96", "--warmup", "0", "--num-iters", "1",
        "--train-warmup", "1", "--train-iters", "1", "--regimes", "crowded",
        "--crowded-candidates", "40", "--skip", "memory", "MODEL.WEIGHTS", ""])
    crowded = report["inference"]["crowded"]
    assert crowded["candidates"] >= 40
    assert crowded["check"]["identical"] and crowded["check"]["instances_ours"] > 0, crowded
    assert crowded["mask_kernel_gain"] > 0
    first = report["training"]["first_step_losses"]
    for k in ("loss_mask", "loss_cls"):
        assert first["ours"][k] == pytest.approx(first["mmdet"][k], rel=1e-3)


def test_solov2_calibration_sets_the_mask_logit_scale(tmp_path):
    """The kernel gain puts the median |mask logit| at DYNAMIC_KERNEL_ABS_LOGIT, measured
    again after applying it (logits are linear in the kernel conv's weight and bias)."""
    import torch

    _, yaml_path, _ = _write_tiny_configs(tmp_path, "SOLOV2Head")
    args = benchmark.get_parser().parse_args(["--config-file", yaml_path, "MODEL.WEIGHTS", ""])
    model = build_ours(benchmark.setup_cfg(args), load_weights=False)
    img = make_image(64, 96)
    _, _, (kind, gain) = calibrate(model, img, {})
    assert kind == "kernel_gain"
    adjust_masks(model, kind, gain)
    with torch.no_grad():
        _, cls_logits, mask_inputs = model.forward_head([{"image": img}])
        logits = full_mask_logits(model.head, mask_inputs, len(cls_logits) - 1)
    target = DYNAMIC_KERNEL_ABS_LOGIT
    assert float(logits.abs().median()) == pytest.approx(target, rel=1e-4)


def test_memory_worker(tiny_configs):
    """The per-model memory measurement (run in-process here; the tool runs it in a fresh
    subprocess per model so that RSS high-water marks do not mix)."""
    _, yaml_path, mm_path = tiny_configs
    for side in ("ours", "mmdet"):
        args = benchmark.get_parser().parse_args([
            "--config-file", yaml_path, "--mmdet-config", mm_path, "--size", "64", "96",
            "--train-warmup", "0", "--mem-worker", f"{side}:train", "MODEL.WEIGHTS", ""])
        out = benchmark.mem_worker(args, benchmark.setup_cfg(args))
        assert out["side"] == side and out["steps"] == 2
        assert out["rss_peak_mib"] >= out["rss_after_build_mib"] > 0


def test_vs_opts_measures_an_ablation_of_ours(tiny_configs, capsys):
    """--vs-opts: a second solo_d2 model with the same weights and one override, here the
    recomputation switch, which must leave outputs and losses unchanged."""
    tmp, yaml_path, _ = tiny_configs
    report = benchmark.main([
        "--config-file", yaml_path, "--size", "64", "96", "--warmup", "0", "--num-iters", "1",
        "--train-warmup", "1", "--train-iters", "1", "--regimes", "crowded",
        "--crowded-candidates", "40", "--skip", "memory",
        "--vs-opts", "MODEL.SOLO.RECOMPUTE_NORM_ACT False", "MODEL.WEIGHTS", ""])
    printed = capsys.readouterr().out
    assert "alt/ours" in printed and report["vs_opts"] == "MODEL.SOLO.RECOMPUTE_NORM_ACT False"
    crowded = report["inference"]["crowded"]
    assert crowded["check_alt"]["identical"] and crowded["check_alt"]["same_count"]
    assert crowded["check_alt"]["instances_ours"] > 0
    first = report["training"]["first_step_losses"]
    assert first["alt"] == pytest.approx(first["ours"], rel=1e-6)
    args = benchmark.get_parser().parse_args([
        "--config-file", yaml_path, "--size", "64", "96", "--train-warmup", "0",
        "--mem-worker", "alt:train", "--vs-opts", "MODEL.SOLO.RECOMPUTE_NORM_ACT False",
        "MODEL.WEIGHTS", ""])
    out = benchmark.mem_worker(args, benchmark.setup_cfg(args))
    assert out["side"] == "alt" and out["rss_peak_mib"] > 0


def test_mask_calibration_covers_the_described_heads():
    """The benchmark's per-head calibration is keyed by the heads of MMDET_HEADS, each with a
    known kind; a head without one is refused by name (never a silent default)."""
    assert list(MASK_CALIBRATION) == list(MMDET_HEADS)
    for name, head in MMDET_HEADS.items():
        kind, _ = mask_calibration(name)
        assert kind == ("kernel_gain" if head.detector == "SOLOv2" else "bias_shift")
    assert mask_calibration("SOLOV2Head") == ("kernel_gain", DYNAMIC_KERNEL_ABS_LOGIT)
    with pytest.raises(BenchmarkError, match="'SOLOV3Head'.*MASK_CALIBRATION"):
        mask_calibration("SOLOV3Head")


def test_amp_measures_autocast_against_fp32_in_one_run(tiny_configs, capsys):
    """--amp bf16: a third model, ours with the same weights under bf16 autocast (inference
    through MODEL.SOLO.TEST.AMP), timed alongside fp32 ours; its outputs matched to ours and
    the CPU's bf16 / AMX flags reported with the result."""
    import re

    tmp, yaml_path, _ = tiny_configs
    report = benchmark.main([
        "--config-file", yaml_path, "--size", "64", "96", "--warmup", "0", "--num-iters", "1",
        "--train-warmup", "1", "--train-iters", "1", "--regimes", "typical",
        "--typical-candidates", "5", "--skip", "memory", "--amp", "bf16", "MODEL.WEIGHTS", ""])
    printed = capsys.readouterr().out
    assert "amp/ours" in printed and "bfloat16 autocast" in printed and report["amp"] == "bfloat16"
    typical = report["inference"]["typical"]
    assert typical["times"]["amp"]["total"] > 0
    match = typical["match_amp"]
    # random calibrated weights: near-tied candidates may swap (tests/layers/test_precision.py
    # checks instances per head); most instances are the same
    assert match["instances_ours"] > 0 and match["matched"] >= 0.5 * match["instances_ours"]
    assert match["min_iou"] >= 0.9
    first = report["training"]["first_step_losses"]
    for k in ("loss_mask", "loss_cls"):  # see LOSS_RTOL in tests/layers/test_precision.py
        assert first["amp"][k] == pytest.approx(first["ours"][k], rel=8 * 2.0**-9)
    # the flags, read independently of the tool
    with open("/proc/cpuinfo") as f:
        flags = set(re.search(r"^flags\s*:(.*)$", f.read(), re.MULTILINE).group(1).split())
    assert report["machine"]["cpu_flags"] == {k: k in flags for k in (
        "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "amx_fp16")}
    assert f"amx_bf16 {'yes' if 'amx_bf16' in flags else 'no'}" in printed
    with pytest.raises(SystemExit):
        benchmark.get_parser().parse_args(["--config-file", yaml_path, "--amp", "int8"])
