"""Make a randomly initialised model behave like a trained one where timing depends on it.

Random weights give arbitrary candidate counts and masks that are all on or all off. The
category conv's bias is shifted so that a chosen number of (cell, class) candidates pass
score_thr (:func:`calibrate`, :func:`shift_cls_bias`), and the masks are adjusted to be about
half on (:func:`adjust_masks`), the same on ours and on mmdet's model.

How a head's masks are adjusted is a measurement setting, one per head of
:data:`solo_d2.convert.mmdet.MMDET_HEADS` (:data:`MASK_CALIBRATION`).
"""
import statistics
from typing import Dict, List, Tuple

import torch
from torch import nn

from .errors import BenchmarkError

__all__ = [
    "DYNAMIC_KERNEL_ABS_LOGIT",
    "MASK_CALIBRATION",
    "mask_calibration",
    "shift_cls_bias",
    "adjust_masks",
    "count_candidates",
    "calibrate",
]

# SOLOv2 has no mask bias to shift: its masks are sigmoid(kernel . features), whose logits
# have an arbitrary scale for random kernels. Its kernel conv is scaled instead, until the
# median |mask logit| is this (masks neither all 0.5 nor saturated).
DYNAMIC_KERNEL_ABS_LOGIT = 2.0

# Per head (the names of MMDET_HEADS == MODEL.SOLO.HEAD_NAME): (kind, target) for
# adjust_masks. "bias_shift": the mask projection biases are shifted until the median mask
# logit is the target; SOLO masks are sigmoid(x) (0.5 at 0), decoupled masks are
# sigmoid(x) * sigmoid(y) (0.5 at logit(sqrt(0.5)) = 0.881 each). "kernel_gain": the
# dynamic-kernel conv is scaled until the median |mask logit| is the target.
MASK_CALIBRATION: Dict[str, Tuple[str, float]] = {
    "SOLOHead": ("bias_shift", 0.0),
    "DecoupledSOLOHead": ("bias_shift", 0.881),
    "DecoupledSOLOLightHead": ("bias_shift", 0.881),
    "SOLOV2Head": ("kernel_gain", DYNAMIC_KERNEL_ABS_LOGIT),
}


def mask_calibration(head_name: str) -> Tuple[str, float]:
    """:data:`MASK_CALIBRATION` of ``head_name``; a clear error for a head without one."""
    if head_name not in MASK_CALIBRATION:
        raise BenchmarkError(
            f"no mask calibration for head {head_name!r}: MASK_CALIBRATION in {__name__} "
            f"has {sorted(MASK_CALIBRATION)}; add the head's (kind, target) there"
        )
    return MASK_CALIBRATION[head_name]


def _mask_head(model: nn.Module) -> nn.Module:
    """The head module of ours (``model.head``) or of mmdet's model (``model.mask_head``):
    both name their convs alike (converted weights map one to one)."""
    return model.mask_head if hasattr(model, "mask_head") else model.head


def shift_cls_bias(model: nn.Module, shift: float) -> None:
    """Add ``shift`` to the category conv's bias (more or fewer candidates pass score_thr)."""
    with torch.no_grad():
        _mask_head(model).conv_cls.bias += shift


def adjust_masks(model: nn.Module, kind: str, value: float) -> None:
    """Make a random model's masks realistic: ``kind`` "bias_shift" adds ``value`` to every
    mask projection bias; "kernel_gain" (SOLOv2) multiplies the dynamic-kernel conv by it."""
    head = _mask_head(model)
    with torch.no_grad():
        if kind == "kernel_gain":
            head.conv_kernel.weight *= value
            head.conv_kernel.bias *= value
            return
        for name in ("conv_mask_list", "conv_mask_list_x", "conv_mask_list_y"):
            for conv in getattr(head, name, []):
                conv.bias += value


def count_candidates(cls_logits: List[torch.Tensor], shift: float, score_thr: float) -> int:
    """(cell, class) pairs of image 0 that pass score_thr after point NMS, with ``shift``
    added to the category logits (per level (N, C, S, S))."""
    from solo_d2.layers.postprocess import point_nms, select_candidates

    probs = [point_nms((x[:1].float() + shift).sigmoid())[0] for x in cls_logits]
    return len(select_candidates(probs, score_thr).scores)


def calibrate(
    model: nn.Module, img: torch.Tensor, targets: Dict[str, int]
) -> Tuple[Dict[str, float], Dict[str, int], Tuple[str, float]]:
    """Calibration of our ``model`` (eval mode) on ``img`` (3, H, W).

    Returns the category-bias shift giving each target candidate count (by name), the counts
    those shifts give, and the mask adjustment (kind, value) for :func:`adjust_masks`: the
    mask-bias shift that puts the median mask logit at its :data:`MASK_CALIBRATION` target,
    or for dynamic kernels the gain that puts the median |mask logit| there. The head is
    known by its registered name (its class name, ``MODEL.SOLO.HEAD_NAME``).
    """
    from solo_d2.testing import full_mask_logits

    kind, target = mask_calibration(type(model.head).__name__)
    with torch.no_grad():
        _, cls_logits, mask_inputs = model.forward_head([{"image": img}])
        coarse = full_mask_logits(model.head, mask_inputs, len(cls_logits) - 1)
        coarse = coarse if isinstance(coarse, tuple) else (coarse,)
    if kind == "kernel_gain":
        med_abs = statistics.median(float(c.float().abs().median()) for c in coarse)
        mask_adjust = (kind, target / med_abs)
    else:
        med = statistics.median(float(c.float().median()) for c in coarse)
        mask_adjust = (kind, target - med)
    thr = model.inference_settings.score_thresh
    shifts, counts = {}, {}
    for name, k in targets.items():
        lo, hi = -20.0, 20.0
        for _ in range(40):  # count grows with the shift
            mid = (lo + hi) / 2
            if count_candidates(cls_logits, mid, thr) < k:
                lo = mid
            else:
                hi = mid
        shifts[name] = hi + 1e-3  # margin: the shifted conv rounds slightly differently
        counts[name] = count_candidates(cls_logits, shifts[name], thr)
    return shifts, counts, mask_adjust
