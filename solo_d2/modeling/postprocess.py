"""Candidates -> mask scoring -> Matrix NMS -> Instances at the original image size.

Nothing here knows which head produced the scores and masks. The split is:
``select_candidates`` turns category logits into (cell, class, score) candidates; the caller
asks its head for the mask probabilities of the *unique* candidate cells only; then
``candidates_to_instances`` scores, filters, de-duplicates and resizes them. Semantics are
mmdet 3.3.0's ``SOLOHead._predict_by_feat_single`` and ``mask_matrix_nms``.
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch
from detectron2.structures import BitMasks, Boxes, Instances
from torch import Tensor
from torch.nn import functional as F

from .precision import fp32_ops

__all__ = [
    "InferenceSettings",
    "point_nms",
    "Candidates",
    "select_candidates",
    "mask_matrix_nms",
    "candidates_to_instances",
]


@dataclass(frozen=True)
class InferenceSettings:
    """``MODEL.SOLO.TEST.*``: how candidates become instances, one name per setting as in
    the config (mmdet 3.3.0's ``test_cfg`` names: score_thr, mask_thr, filter_thr, max_per_img)."""

    #: category score a cell needs to become a candidate
    score_thresh: float = 0.1
    #: probability that binarises masks
    mask_thresh: float = 0.5
    #: candidates (by score) kept before Matrix NMS; -1: all
    nms_pre: int = 500
    #: score a mask must keep after Matrix NMS decay
    filter_thresh: float = 0.05
    #: Matrix NMS decay kernel, "gaussian" or "linear", and the gaussian's sigma
    kernel: str = "gaussian"
    sigma: float = 2.0
    #: instances kept per image; -1: all
    max_per_img: int = 100

    @classmethod
    def from_config(cls, cfg) -> "InferenceSettings":
        t = cfg.MODEL.SOLO.TEST
        return cls(
            score_thresh=t.SCORE_THRESH,
            mask_thresh=t.MASK_THRESH,
            nms_pre=t.NMS_PRE,
            filter_thresh=t.FILTER_THRESH,
            kernel=t.KERNEL,
            sigma=t.SIGMA,
            max_per_img=t.MAX_PER_IMG,
        )


def point_nms(probs: Tensor) -> Tensor:
    """Zero every cell that is not a 2x2 local maximum of its class map.

    Args:
        probs: (N, C, S, S) category probabilities.
    Returns:
        (N, C, S, S) with non-maxima set to 0.
    """
    local_max = F.max_pool2d(probs, 2, stride=1, padding=1)
    return probs * (local_max[:, :, :-1, :-1] == probs)


@dataclass
class Candidates:
    """Cells of one image whose category score passed the threshold, one row per (cell, class).

    scores, labels: (K,). mask_ids: (K,) index into ``cells``.
    cells: (U, 2) unique (level, cell index in the level) pairs whose masks are needed.
    """

    scores: Tensor
    labels: Tensor
    mask_ids: Tensor
    cells: Tensor


def select_candidates(cls_probs: List[Tensor], score_thr: float) -> Candidates:
    """Candidates of one image.

    Args:
        cls_probs: per level (C, S_l, S_l) category probabilities after point NMS.
    """
    flat = torch.cat([p.flatten(1).t() for p in cls_probs])  # (sum S^2, C), level-major
    cell, labels = (flat > score_thr).nonzero(as_tuple=True)
    scores = flat[cell, labels]
    uniq, mask_ids = torch.unique(cell, return_inverse=True)
    sizes = torch.tensor([p.shape[-1] ** 2 for p in cls_probs], device=flat.device)
    ends = sizes.cumsum(0)
    level = torch.bucketize(uniq, ends, right=True)
    local = uniq - (ends - sizes)[level]
    return Candidates(scores, labels, mask_ids, torch.stack([level, local], 1))


@fp32_ops
def mask_matrix_nms(
    masks: Tensor,
    labels: Tensor,
    scores: Tensor,
    mask_area: Tensor,
    *,
    nms_pre: int = -1,
    max_per_img: int = -1,
    kernel: str = "gaussian",
    sigma: float = 2.0,
    filter_thresh: float = -1,
    mask_ids: Tensor = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Matrix NMS (SOLOv2): decay each mask's score by its overlap with higher-scored masks
    of the same class, compensated by how much those were decayed themselves.

    Args:
        masks: (U, H, W) bool masks.
        labels, scores: (K,) per candidate.
        mask_area: (U,) pixel count of each mask.
        mask_ids: (K,) the mask of each candidate (default: candidate k has mask k). Several
            candidates (same cell, different classes) may share a mask; overlaps are then
            computed once per pair of masks.
        kernel: "gaussian" (exp(-sigma * iou^2)) or "linear" (1 - iou).
    Returns:
        scores (n,), labels (n,) and keep (n,): indices of the kept candidates, by decreasing
        decayed score.
    """
    if kernel not in ("gaussian", "linear"):
        raise ValueError(f"Matrix NMS kernel must be 'gaussian' or 'linear', got {kernel!r}")
    scores, mask_area = scores.float(), mask_area.float()  # fp32 under autocast too
    if mask_ids is None:
        mask_ids = torch.arange(len(scores), device=scores.device)
    empty = (scores.new_zeros(0), labels.new_zeros(0), labels.new_zeros(0))
    if len(scores) == 0:
        return empty
    scores, order = torch.sort(scores, descending=True)
    if 0 < nms_pre < len(order):
        order, scores = order[:nms_pre], scores[:nms_pre]
    labels = labels[order]
    ids = mask_ids[order]

    inter = _same_class_intersections(masks, labels, ids)
    area = mask_area[ids]
    n = len(order)
    area_mat = area.expand(n, n)
    iou = (inter / (area_mat + area_mat.t() - inter)).triu(diagonal=1)
    same_label = (labels[None, :] == labels[:, None]).triu(diagonal=1)
    decay_iou = iou * same_label
    compensate_iou = decay_iou.max(0)[0].expand(n, n).t()
    if kernel == "gaussian":
        decay = torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * compensate_iou**2)
    else:
        decay = (1 - decay_iou) / (1 - compensate_iou)
    scores = scores * decay.min(0)[0]

    keep = order
    if filter_thresh > 0:
        passed = scores >= filter_thresh
        if not passed.any():
            return empty
        keep, scores, labels = keep[passed], scores[passed], labels[passed]
    scores, resort = torch.sort(scores, descending=True)
    keep, labels = keep[resort], labels[resort]
    if 0 < max_per_img < len(keep):
        keep, scores = keep[:max_per_img], scores[:max_per_img]
        labels = labels[:max_per_img]
    return scores, labels, keep


def _same_class_intersections(masks: Tensor, labels: Tensor, ids: Tensor) -> Tensor:
    """(n, n) pixel intersections of the masks ``ids`` of candidates with the same label; 0
    between different labels, whose overlaps Matrix NMS never reads.

    One Gram matrix per class instead of one over all n candidates: with candidates spread
    over many classes that is far less work, and the counts are the same integers.
    """
    n = len(ids)
    inter = masks.new_zeros((n, n), dtype=torch.float32)
    by_label, perm = torch.sort(labels, stable=True)
    counts = torch.unique_consecutive(by_label, return_counts=True)[1].tolist()
    start = 0
    for count in counts:
        rows = perm[start : start + count]
        start += count
        used, inv = torch.unique(ids[rows], return_inverse=True)
        flat = masks[used].flatten(1).float()
        inter[rows[:, None], rows[None, :]] = (flat @ flat.t())[inv][:, inv]
    return inter


def _empty_instances(output_size: Tuple[int, int], device) -> Instances:
    result = Instances(output_size)
    result.pred_masks = torch.zeros((0, *output_size), dtype=torch.bool, device=device)
    result.pred_boxes = Boxes(torch.zeros((0, 4), device=device))
    result.scores = torch.zeros(0, device=device)
    result.pred_classes = torch.zeros(0, dtype=torch.int64, device=device)
    return result


@fp32_ops
def candidates_to_instances(
    cand: Candidates,
    cell_probs: Tensor,
    *,
    level_strides: Sequence[int],
    image_size: Tuple[int, int],
    output_size: Tuple[int, int],
    settings: InferenceSettings,
    mask_stride: int = 4,
) -> Instances:
    """Final instances of one image.

    Args:
        cand: candidates from ``select_candidates``.
        cell_probs: (U, H/4, W/4) mask probabilities of ``cand.cells``, at the common mask
            resolution of the padded batch (H, W).
        level_strides: nominal stride per level; masks with no more pixels than it are dropped.
        image_size: (h, w) of the image inside the padded batch.
        output_size: (height, width) to return masks at (the original image size).
        settings: thresholds and Matrix NMS settings (MODEL.SOLO.TEST).
        mask_stride: how many times ``cell_probs`` are smaller than the padded batch; they
            are upsampled by it before cropping ``image_size`` (4 for SOLO; SOLOv2's
            MODEL.SOLO.MASK_FEAT.MASK_STRIDE).
    Returns:
        Instances with pred_masks (n, height, width) bool, pred_boxes (tight boxes of the
        masks), scores and pred_classes.
    """
    # areas, maskness and Matrix NMS in fp32 whatever the autocast state (precision.py)
    cell_probs = cell_probs.float()
    cand = Candidates(cand.scores.float(), cand.labels, cand.mask_ids, cand.cells)
    device = cell_probs.device
    if len(cand.scores) == 0:
        return _empty_instances(output_size, device)
    mask_thresh = settings.mask_thresh
    masks = cell_probs > mask_thresh
    areas = masks.sum((1, 2)).float()
    strides = torch.as_tensor(level_strides, device=device, dtype=areas.dtype)[cand.cells[:, 0]]
    big_enough = areas > strides  # per unique cell
    # mean probability inside the mask: threshold(p, thr, 0) is p * (p > thr) in one pass
    maskness = F.threshold(cell_probs, mask_thresh, 0.0).sum((1, 2)) / areas.clamp(min=1)
    kept = big_enough[cand.mask_ids]
    if not kept.any():
        return _empty_instances(output_size, device)
    mask_ids = cand.mask_ids[kept]
    scores = cand.scores[kept] * maskness[mask_ids]
    labels = cand.labels[kept]

    scores, labels, keep = mask_matrix_nms(
        masks, labels, scores, areas,
        nms_pre=settings.nms_pre, max_per_img=settings.max_per_img, kernel=settings.kernel,
        sigma=settings.sigma, filter_thresh=settings.filter_thresh, mask_ids=mask_ids,
    )
    if len(keep) == 0:
        return _empty_instances(output_size, device)
    probs = cell_probs[mask_ids[keep]][None]  # (1, n, H/4, W/4)
    padded = (probs.shape[-2] * mask_stride, probs.shape[-1] * mask_stride)
    probs = F.interpolate(probs, size=padded, mode="bilinear")[:, :, : image_size[0], : image_size[1]]
    if tuple(image_size) != tuple(output_size):  # a same-size bilinear resize is the identity
        probs = F.interpolate(probs, size=output_size, mode="bilinear")
    final = probs[0] > mask_thresh

    result = Instances(output_size)
    result.pred_masks = final
    result.pred_boxes = BitMasks(final).get_bounding_boxes().to(device)
    result.scores = scores
    result.pred_classes = labels
    return result
