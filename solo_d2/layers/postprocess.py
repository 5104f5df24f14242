"""Candidates -> mask scoring -> Matrix NMS -> Instances at the original image size.

Nothing here knows which head produced the scores and masks. The split is:
``select_candidates`` turns category logits into (cell, class, score) candidates; the caller
asks its head for the mask probabilities of the *unique* candidate cells only; then
``candidates_to_predictions`` scores, filters, de-duplicates and resizes them. Semantics are
mmdet 3.3.0's ``SOLOHead._predict_by_feat_single`` and ``mask_matrix_nms``.

Everything here is tensor code without data-dependent Python: the same functions run in
PyTorch and are traced into the exported ONNX graph (``solo_d2.export``), and every step
accepts empty inputs (an image without detections).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.nn import functional as F

from .precision import fp32_ops

__all__ = [
    "InferenceSettings",
    "point_nms",
    "Candidates",
    "select_candidates",
    "mask_matrix_nms",
    "mask_boxes",
    "resize_maps",
    "candidates_to_predictions",
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

    def __post_init__(self) -> None:
        """Values the post-processing cannot use are a ValueError naming them (MODEL.SOLO.TEST.*
        as a yaml config names them, or the LazyConfig's inference_settings fields)."""
        bad = []
        if self.kernel not in ("gaussian", "linear"):
            bad.append(f"kernel (KERNEL) is {self.kernel!r}; expected 'gaussian' or 'linear'")
        for name in ("score_thresh", "filter_thresh"):
            if not 0 <= getattr(self, name) < 1:
                bad.append(f"{name} ({name.upper()}) is {getattr(self, name)!r}; expected a "
                           "number in [0, 1)")
        if not 0 < self.mask_thresh < 1:
            bad.append(f"mask_thresh (MASK_THRESH) is {self.mask_thresh!r}; expected a number "
                       "in (0, 1)")
        for name in ("nms_pre", "max_per_img"):
            v = getattr(self, name)
            if not (isinstance(v, int) and (v >= 1 or v == -1)):
                bad.append(f"{name} ({name.upper()}) is {v!r}; expected an integer >= 1, or -1")
        if not self.sigma > 0:
            bad.append(f"sigma (SIGMA) is {self.sigma!r}; expected a number > 0")
        if bad:
            raise ValueError("Invalid inference settings (MODEL.SOLO.TEST.*):\n  " + "\n  ".join(bad))

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
    cell, labels = (flat > score_thr).nonzero(as_tuple=True)  # row-major: cells ascending
    scores = flat[cell, labels]
    # The cells arrive sorted, so their unique values start where they change (torch.unique
    # without a sort; with no candidate the comparison broadcasts to an empty result).
    first = cell != torch.cat([cell.new_full((1,), -1), cell[:-1]])
    mask_ids = first.long().cumsum(0) - 1
    uniq = cell[first]
    sizes = torch.tensor([p.shape[-1] ** 2 for p in cls_probs], device=flat.device)
    ends = sizes.cumsum(0)
    level = (uniq[:, None] >= ends[None, :]).sum(1)
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
    mask_ids: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Matrix NMS (SOLOv2): decay each mask's score by its overlap with higher-scored masks
    of the same class, compensated by how much those were decayed themselves.

    Pure tensor code without data-dependent Python (it is traced into the ONNX graph as is);
    every input may be empty.

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
        mask_ids = torch.arange(scores.shape[0], device=scores.device)
    scores, order = torch.sort(scores, descending=True)
    if nms_pre > 0:
        order, scores = order[:nms_pre], scores[:nms_pre]
    labels = labels[order]
    ids = mask_ids[order]

    inter = _intersections(masks, ids)
    area = mask_area[ids]
    iou = (inter / (area[None, :] + area[:, None] - inter)).triu(diagonal=1)
    same_label = (labels[None, :] == labels[:, None]).triu(diagonal=1)
    decay_iou = iou * same_label
    # Column maxima and minima over a padding row (IoUs are >= 0; decays are finite), so
    # that no candidate at all reduces to empty results instead of an error.
    compensate_iou = F.pad(decay_iou, (0, 0, 0, 1)).max(0)[0][:, None]
    if kernel == "gaussian":
        decay = torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * compensate_iou**2)
    else:
        decay = (1 - decay_iou) / (1 - compensate_iou)
    scores = scores * F.pad(decay, (0, 0, 0, 1), value=float("inf")).min(0)[0]

    keep = order
    if filter_thresh > 0:
        passed = (scores >= filter_thresh).nonzero()[:, 0]
        keep, scores, labels = keep[passed], scores[passed], labels[passed]
    scores, resort = torch.sort(scores, descending=True)
    keep, labels = keep[resort], labels[resort]
    if max_per_img > 0:
        keep, scores, labels = keep[:max_per_img], scores[:max_per_img], labels[:max_per_img]
    return scores, labels, keep


def _intersections(masks: Tensor, ids: Tensor) -> Tensor:
    """(n, n) pixel intersections of the masks ``ids`` (which may repeat), from one Gram
    matrix over the distinct masks. The counts are exact integers in fp32 (< 2^24 pixels).

    A traced graph takes the Gram matrix of ``masks[ids]`` as they come (the same counts):
    OpenVINO cannot run a Unique of no candidate (an image without detections).
    """
    if torch.jit.is_tracing():
        flat = masks[ids].flatten(1).float()
        return flat @ flat.t()
    used, inv = torch.unique(ids, return_inverse=True)
    flat = masks[used].flatten(1).float()
    return (flat @ flat.t())[inv][:, inv]


def mask_boxes(masks: Tensor) -> Tensor:
    """(n, H, W) bool -> (n, 4) tight XYXY boxes, (0, 0, 0, 0) for an empty mask: Detectron2's
    ``BitMasks.get_bounding_boxes`` without its per-mask Python loop."""
    boxes = []
    for any_along in (masks.any(1), masks.any(2)):  # columns (x), rows (y) holding a pixel
        size = any_along.shape[1]
        hits = any_along.to(torch.uint8)
        first = hits.argmax(1)
        last = size - hits.flip(1).argmax(1)
        boxes.append(torch.stack([first, last], 1) * any_along.any(1, keepdim=True))
    (x0, x1), (y0, y1) = boxes[0].unbind(1), boxes[1].unbind(1)
    return torch.stack([x0, y0, x1, y1], 1).float()


def resize_maps(maps: Tensor, size: Sequence) -> Tensor:
    """(K, h, w) -> (K, *size) bilinear, for any K including 0.

    torch's bilinear kernel refuses empty inputs. Eager code returns the empty result; a
    traced graph cannot branch on K, so it resizes one extra zero map and drops it.
    """
    if torch.jit.is_tracing():
        padded = F.pad(maps, (0, 0, 0, 0, 0, 1))[None]
        return F.interpolate(padded, size=size, mode="bilinear")[0, :-1]
    if maps.shape[0] == 0:
        return maps.new_zeros((0, *size))
    return F.interpolate(maps[None], size=size, mode="bilinear")[0]


@fp32_ops
def candidates_to_predictions(
    cand: Candidates,
    cell_probs: Tensor,
    *,
    level_strides: Sequence[int],
    image_size: Tuple,
    output_size: Optional[Tuple[int, int]],
    settings: InferenceSettings,
    mask_stride: int = 4,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Final predictions of one image as tensors (the ONNX graph's outputs).

    Args:
        cand: candidates from ``select_candidates``.
        cell_probs: (U, H/4, W/4) mask probabilities of ``cand.cells``, at the common mask
            resolution of the padded batch (H, W).
        level_strides: nominal stride per level; masks with no more pixels than it are dropped.
        image_size: (h, w) of the image inside the padded batch.
        output_size: (height, width) to resize the masks to (the original image size), or None
            to keep ``image_size``.
        settings: thresholds and Matrix NMS settings (MODEL.SOLO.TEST).
        mask_stride: how many times ``cell_probs`` are smaller than the padded batch; they
            are upsampled by it before cropping ``image_size`` (4 for SOLO; SOLOv2's
            MODEL.SOLO.MASK_FEAT.MASK_STRIDE).
    Returns:
        masks (n, height, width) bool, scores (n,), classes (n,) int64 and boxes (n, 4) XYXY
        (tight boxes of the masks), by decreasing score.
    """
    # areas, maskness and Matrix NMS in fp32 whatever the autocast state (precision.py)
    cell_probs = cell_probs.float()
    cand = Candidates(cand.scores.float(), cand.labels, cand.mask_ids, cand.cells)
    mask_thresh = settings.mask_thresh
    masks = cell_probs > mask_thresh
    areas = masks.sum((1, 2)).float()
    strides = torch.as_tensor(level_strides, device=areas.device, dtype=areas.dtype)
    big_enough = areas > strides[cand.cells[:, 0]]  # per unique cell
    maskness = (cell_probs * masks).sum((1, 2)) / areas.clamp(min=1)  # mean prob. inside
    kept = big_enough[cand.mask_ids].nonzero()[:, 0]
    mask_ids = cand.mask_ids[kept]
    scores = cand.scores[kept] * maskness[mask_ids]
    labels = cand.labels[kept]

    scores, labels, keep = mask_matrix_nms(
        masks, labels, scores, areas,
        nms_pre=settings.nms_pre, max_per_img=settings.max_per_img, kernel=settings.kernel,
        sigma=settings.sigma, filter_thresh=settings.filter_thresh, mask_ids=mask_ids,
    )
    probs = cell_probs[mask_ids[keep]]  # (n, H/4, W/4)
    padded = (probs.shape[-2] * mask_stride, probs.shape[-1] * mask_stride)
    probs = resize_maps(probs, padded)[:, : image_size[0], : image_size[1]]
    if output_size is not None:
        probs = resize_maps(probs, output_size)
    final = probs > mask_thresh
    return final, scores, labels, mask_boxes(final)
