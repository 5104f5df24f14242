"""The benchmark's measurements, one function each: inference latency (per candidate
regime), one training step, peak memory (per model and phase, each in a fresh process, and
:func:`memory_phase`, what such a process runs). Each returns its report entry and the text
it prints; ``models`` maps a side ("ours", "mmdet", "alt"; see :data:`.models.SIDES`) to its
model, "ours" first, all in eval mode with the same weights."""
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from detectron2.config import CfgNode
from torch import nn

from solo_d2.engine.configs import config_device, config_num_classes

from .calibration import adjust_masks, calibrate, count_candidates, shift_cls_bias
from .compare import as_mmdet_like, compare_outputs, match_instances
from .errors import BenchmarkError
from .inputs import make_gt, make_image
from .memory import PhasePeak
from .models import build_side, side_amp
from .report import format_memory_table, format_table, log, peak_keys
from .steps import (
    GroundTruth,
    backbone_saved_mib,
    make_sgd,
    mmdet_infer,
    mmdet_train_inputs,
    mmdet_train_step,
    ours_infer,
    ours_train_inputs,
    ours_train_step,
)
from .timing import PhaseTimes, run_alternating

__all__ = ["REGIMES", "measure_inference", "measure_training", "measure_memory", "memory_phase"]

# candidate regimes: "typical" and "crowded" calibrate the category bias to a candidate count,
# "as-is" keeps the model's own (trained weights)
REGIMES = ("typical", "crowded", "as-is")
INFER_PHASES = ["backbone_fpn", "head", "postprocess"]
TRAIN_PHASES = ["backbone_fpn", "head", "loss", "backward_step"]


def _ratios(res: Dict[str, Dict[str, Any]], phases: List[str]) -> Dict[str, float]:
    """mmdet's time over ours per phase and in total."""
    return {p: res["mmdet"][p] / max(res["ours"][p], 1e-9) for p in phases + ["total"]}


def measure_inference(
    models: Dict[str, nn.Module], img: torch.Tensor, regimes: List[str],
    candidates: Dict[str, int], warmup: int, iters: int, device: str, amp: str = "",
) -> Tuple[Dict[str, Any], List[str]]:
    """Inference latency of each model on ``img`` (3, H, W), per regime (in order; the
    category-bias shifts of one regime replace the previous one's); ``candidates`` is the
    target count of each calibrated regime. Random masks are first made realistic on every
    model alike. Returns {regime: entry} and the printed text."""
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise BenchmarkError(f"unknown regime(s) {unknown}; expected some of {list(REGIMES)}")
    ours = models["ours"]
    targets = {r: candidates[r] for r in regimes if r != "as-is"}
    shifts, _, mask_adjust = calibrate(ours, img, targets) if targets else ({}, {}, None)
    if mask_adjust:
        for m in models.values():
            adjust_masks(m, *mask_adjust)
    entries: Dict[str, Any] = {}
    text: List[str] = []
    applied = 0.0
    for regime in regimes:
        delta = shifts.get(regime, 0.0) - applied if regime != "as-is" else 0.0
        for m in models.values():
            shift_cls_bias(m, delta)
        applied += delta
        log(f"inference, regime {regime}")
        calibration = {"cls_bias_shift": applied}
        if mask_adjust:
            calibration[f"mask_{mask_adjust[0]}"] = mask_adjust[1]
        entries[regime], lines = _inference_regime(models, img, warmup, iters, device, amp,
                                                   calibration)
        entry = entries[regime]
        title = (f"inference, regime {regime}: {entry['candidates']} candidates pass score_thr "
                 f"(median of {iters} after {warmup} warm-up)")
        text += [format_table(title, entry["times"], INFER_PHASES)] + lines
    return entries, text


def _inference_regime(
    models: Dict[str, nn.Module], img: torch.Tensor, warmup: int, iters: int, device: str,
    amp: str, calibration: Dict[str, float],
) -> Tuple[Dict[str, Any], List[str]]:
    """One regime: alternating timed inferences, the candidate count, the ``calibration``
    in effect (reported as is), output checks; the entry and its text below the table."""
    outs: Dict[str, Any] = {}

    def runner(side: str) -> Callable[[], PhaseTimes]:
        infer = mmdet_infer if side == "mmdet" else ours_infer

        def run() -> PhaseTimes:
            t, outs[side] = infer(models[side], img, device, side_amp(side, amp))
            return t
        return run

    res = run_alternating({s: runner(s) for s in models}, warmup, iters)
    ours = models["ours"]
    with torch.no_grad():
        _, cls_logits, _ = ours.forward_head([{"image": img}])
    candidates = count_candidates(cls_logits, 0.0, ours.inference_settings.score_thresh)
    entry: Dict[str, Any] = {"times": res, "candidates": candidates, **calibration,
                             "instances_ours": len(outs["ours"])}
    lines = []
    if "mmdet" in outs:
        entry["check"] = compare_outputs(outs["ours"], outs["mmdet"])
        entry["ratio_time_mmdet_over_ours"] = _ratios(res, INFER_PHASES)
        lines.append(f"output check: {json.dumps(entry['check'])}\n")
    else:
        lines.append(f"instances: {entry['instances_ours']}\n")
    if "amp" in outs:
        entry["check_amp"] = compare_outputs(outs["ours"], as_mmdet_like(outs["amp"]))
        entry["match_amp"] = match_instances(outs["ours"], outs["amp"])
        lines.append(f"output check, amp vs ours: {json.dumps(entry['check_amp'])}\n"
                     f"instance match, amp vs ours: {json.dumps(entry['match_amp'])}\n")
    if "alt" in outs:
        entry["check_alt"] = compare_outputs(outs["ours"], as_mmdet_like(outs["alt"]))
        lines.append(f"output check, alt vs ours: {json.dumps(entry['check_alt'])}\n")
    return entry, lines


def measure_training(
    models: Dict[str, nn.Module], img: torch.Tensor, gt: GroundTruth, warmup: int, iters: int,
    device: str, amp: str = "",
) -> Tuple[Dict[str, Any], List[str]]:
    """One training step (batch 1, SGD) of each model on ``img`` with ``gt``: the first
    step's losses (same weights and gt: same losses), then alternating timed steps (the
    first step counts as one of the ``warmup`` ones), and what backbone+FPN keeps for
    backward. Returns the report entry and the printed text."""
    losses: Dict[str, Any] = {}
    ours_inputs = ours_train_inputs(img, gt, device)

    def stepper(side: str) -> Callable[[], PhaseTimes]:
        model, opt = models[side], make_sgd(models[side])
        if side == "mmdet":
            step, inputs = mmdet_train_step, mmdet_train_inputs(img, gt, model, device)
        else:
            step, inputs = ours_train_step, ours_inputs

        def run() -> PhaseTimes:
            t, losses[side] = step(model, opt, inputs, device, side_amp(side, amp))
            return t
        return run

    fns = {side: stepper(side) for side in models}
    first: Dict[str, Any] = {}
    for side, fn in fns.items():
        fn()
        first[side] = dict(losses[side])
    res = run_alternating(fns, max(warmup - 1, 0), iters)
    entry: Dict[str, Any] = {"times": res, "first_step_losses": first}
    if "mmdet" in res:
        entry["ratio_time_mmdet_over_ours"] = _ratios(res, TRAIN_PHASES)
    title = (f"training step (batch 1, {len(gt[1])} gt instances, SGD; median of "
             f"{iters} after {warmup} warm-up)")
    text = [format_table(title, res, TRAIN_PHASES), f"first-step losses: {json.dumps(first)}\n"]
    saved = {side: backbone_saved_mib(models[side], img) for side in fns}
    entry["backbone_saved_for_backward_mib"] = saved
    text.append("saved for backward by backbone+FPN (MiB, weights included): "
                f"{json.dumps({k: round(v) for k, v in saved.items()})}\n")
    return entry, text


def measure_memory(
    sides: List[str], phases: List[str], device: str,
    run_worker: Callable[[str, str], Dict[str, Any]],
) -> Tuple[Dict[str, Any], Dict[str, Dict[str, Dict[str, float]]], str]:
    """Peak memory of each side in each phase, ``run_worker(side, phase)`` each (a fresh
    process running :func:`memory_phase`). Returns {"side:phase": marks}, ours over each
    other side ({other: {phase: {"peak", "increase"}}}) and the printed table."""
    mem: Dict[str, Any] = {}
    for phase in phases:
        for side in sides:
            log(f"peak memory {side}:{phase} (subprocess)")
            mem[f"{side}:{phase}"] = run_worker(side, phase)
    key, inc = peak_keys(device)
    ratios: Dict[str, Dict[str, Dict[str, float]]] = {}
    for phase in phases:
        for other in ("mmdet", "alt", "amp"):
            if f"{other}:{phase}" in mem:
                o, t = mem[f"ours:{phase}"], mem[f"{other}:{phase}"]
                ratios.setdefault(other, {})[phase] = {
                    "peak": o[key] / t[key], "increase": o[inc] / max(t[inc], 1e-9)}
    return mem, ratios, format_memory_table(mem, ratios, phases, device)


def memory_phase(
    cfg: CfgNode, side: str, phase: str, size: Tuple[int, int], steps: int, seed: int = 0,
    mmdet_config: Optional[str] = None, vs_opts: str = "", amp: str = "",
) -> Dict[str, Any]:
    """In this (fresh) process: build one model (:func:`.models.build_side`), run ``steps``
    iterations of one phase ("infer" or "train") on the benchmark image, and report the
    memory marks (:class:`.memory.PhasePeak`) with the side, phase and step count."""
    if phase not in ("infer", "train"):
        raise BenchmarkError(f"unknown memory phase {phase!r}; expected infer or train")
    device = config_device(cfg)
    h, w = size
    img = make_image(h, w, seed).to(device)
    model = build_side(cfg, side, mmdet_config, vs_opts, seed, amp)
    amp = side_amp(side, amp)
    peak = PhasePeak(device)
    if phase == "train":
        gt = make_gt(h, w, num_classes=config_num_classes(cfg), seed=seed)
        opt = make_sgd(model)
        if side == "mmdet":
            step, inputs = mmdet_train_step, mmdet_train_inputs(img, gt, model, device)
        else:
            step, inputs = ours_train_step, ours_train_inputs(img, gt, device)
        for _ in range(steps):
            step(model, opt, inputs, device, amp)
    else:
        infer = mmdet_infer if side == "mmdet" else ours_infer
        for _ in range(steps):
            infer(model, img, device, amp)
    return {"side": side, "phase": phase, "steps": steps, **peak.result()}
