"""Ground truth -> per-level grid labels, positive cells and their mask targets (no nn.Module).

Semantics are mmdet 3.3.0's ``SOLOHead._get_targets_single``: an instance goes to every level
whose [lo, hi] range holds sqrt(box area); on a level, the cells inside its centre region
(``pos_scale`` x half its box around the mask's centre of mass, clamped to the 3x3 cells
around the centre cell) are positive with its label and its mask downscaled to the level's
mask resolution. When regions overlap, the later instance wins. The arithmetic is done in the
same float32 steps as mmdet 3.3.0 so that boundary cases land on the same cells.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.structures import BitMasks, Instances, PolygonMasks
from torch import Tensor
from torch.nn import functional as F

__all__ = [
    "LevelTargets",
    "center_of_mass",
    "downscale_masks",
    "assign_targets_single",
    "padded_gt_masks",
    "assign_targets",
]


@dataclass
class LevelTargets:
    """Targets of one image on one level.

    labels: (S, S) int64, ``num_classes`` for background.
    pos_cells: (P,) int64 row-major cell indices of the positive cells, increasing (with
        ``keep_overlaps``: grouped by instance, a cell may repeat).
    mask_targets: (P, h, w) float32 in {0, 1}: the mask each positive cell must predict.
    """

    labels: Tensor
    pos_cells: Tensor
    mask_targets: Tensor


def center_of_mass(masks: Tensor) -> Tuple[Tensor, Tensor]:
    """(M, H, W) bool -> centre row and column of each mask, (M,) float32 each."""
    h, w = masks.shape[-2:]
    # Integer sums (bool.sum gives int64) keep the moments exact, as mmdet 3.3.0's are.
    area = masks.sum((1, 2)).float().clamp(min=1e-6)
    rows = (masks.sum(2) * torch.arange(h, device=masks.device)).sum(1)
    cols = (masks.sum(1) * torch.arange(w, device=masks.device)).sum(1)
    return rows / area, cols / area


def downscale_masks(masks: Tensor, factor: int) -> Tensor:
    """(M, H, W) bool -> (M, round(H/factor), round(W/factor)) float32 in {0, 1}.

    Bilinear (half-pixel centres, no antialiasing) then >= 0.5: this reproduces OpenCV's
    ``INTER_LINEAR`` on uint8 {0, 1} masks, which mmdet uses (``mmcv.imrescale``), bit for bit
    for integer factors.
    """
    h, w = masks.shape[-2:]
    size = (int(h / factor + 0.5), int(w / factor + 0.5))
    if len(masks) == 0:
        return masks.new_zeros((0, *size), dtype=torch.float32)
    small = F.interpolate(masks[:, None].float(), size=size, mode="bilinear", align_corners=False)
    return (small[:, 0] >= 0.5).float()


def _grid_coord(pos: Tensor, extent: int, num_grid: int) -> Tensor:
    """Grid index of image coordinates ``pos`` (float32), truncated as mmdet 3.3.0 does."""
    return torch.trunc((pos / extent) / (1.0 / num_grid)).to(torch.int64)


def assign_targets_single(
    gt_boxes: Tensor,
    gt_classes: Tensor,
    gt_masks: Tensor,
    *,
    mask_sizes: Sequence[Tuple[int, int]],
    num_grids: Sequence[int],
    strides: Sequence[int],
    scale_ranges: Sequence[Sequence[float]],
    pos_scale: float,
    num_classes: int,
    drop_vanished: bool = True,
    mask_strides: Optional[Sequence[int]] = None,
    keep_overlaps: bool = False,
) -> List[LevelTargets]:
    """Targets of one image on every level.

    Args:
        gt_boxes: (M, 4) XYXY boxes in padded-image pixels.
        gt_classes: (M,) int64 in [0, num_classes).
        gt_masks: (M, H, W) bool masks at the padded image size (H, W) = 4 * mask_sizes[0].
        mask_sizes: per level (h, w) of the mask predictions; level l's masks are
            ``strides[l] / 2`` times smaller than the image.
        drop_vanished: skip an instance on a level where its downscaled mask is empty
            (mmdet 3.3.0 trains such a cell towards an empty mask).
        mask_strides: per level, how many times the masks are smaller than the image
            (default ``strides[l] / 2``, SOLO; SOLOv2's unified mask features: its mask stride
            on every level). The padded image is ``mask_strides[0] * mask_sizes[0]`` (default 4x).
        keep_overlaps: a cell in several instances' centre regions keeps the label of the
            last one but one positive entry (and mask target) per instance, in instance
            order (mmdet SOLOv2); default: only the last instance's (mmdet SOLO).
    Returns:
        One LevelTargets per level.
    """
    device = gt_masks.device
    if mask_strides is None:
        factors = [int(s // 2) for s in strides]
    else:
        factors = [int(f) for f in mask_strides]
    img_scale = factors[0]
    img_h, img_w = mask_sizes[0][0] * img_scale, mask_sizes[0][1] * img_scale
    if gt_masks.shape[-2:] != (img_h, img_w):
        raise ValueError(
            f"gt_masks are {tuple(gt_masks.shape[-2:])} but the padded image is {(img_h, img_w)}"
        )
    gt_boxes = gt_boxes.float()
    scale = torch.sqrt((gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]))
    half_w = 0.5 * (gt_boxes[:, 2] - gt_boxes[:, 0]) * pos_scale
    half_h = 0.5 * (gt_boxes[:, 3] - gt_boxes[:, 1]) * pos_scale
    nonempty = gt_masks.flatten(1).any(1)
    center_h, center_w = center_of_mass(gt_masks)

    small_cache = {}  # downscale factor -> (M, h, w) masks; levels often share a factor
    results = []
    for (lo, hi), factor, (mh, mw), s in zip(scale_ranges, factors, mask_sizes, num_grids):
        labels = torch.full((s, s), num_classes, dtype=torch.int64, device=device)
        hit = ((scale >= lo) & (scale <= hi) & nonempty).nonzero().flatten()
        if len(hit) and factor not in small_cache:
            small_cache[factor] = downscale_masks(gt_masks, factor)
        if len(hit) and drop_vanished:
            hit = hit[small_cache[factor][hit].flatten(1).any(1)]
        if len(hit) == 0:
            results.append(
                LevelTargets(
                    labels,
                    torch.zeros(0, dtype=torch.int64, device=device),
                    torch.zeros((0, mh, mw), device=device),
                )
            )
            continue
        ch, cw = center_h[hit], center_w[hit]
        coord_h, coord_w = _grid_coord(ch, img_h, s), _grid_coord(cw, img_w, s)
        top = torch.maximum(_grid_coord(ch - half_h[hit], img_h, s).clamp(min=0), coord_h - 1)
        down = torch.minimum(_grid_coord(ch + half_h[hit], img_h, s).clamp(max=s - 1), coord_h + 1)
        left = torch.maximum(_grid_coord(cw - half_w[hit], img_w, s).clamp(min=0), coord_w - 1)
        right = torch.minimum(_grid_coord(cw + half_w[hit], img_w, s).clamp(max=s - 1), coord_w + 1)

        # owner[i, j]: the last hit instance whose region covers cell (i, j), or -1.
        ar = torch.arange(s, device=device)
        rows_in = (ar[None] >= top[:, None]) & (ar[None] <= down[:, None])  # (K, S)
        cols_in = (ar[None] >= left[:, None]) & (ar[None] <= right[:, None])  # (K, S)
        covers = rows_in[:, :, None] & cols_in[:, None, :]  # (K, S, S)
        order = torch.arange(1, len(hit) + 1, device=device)[:, None, None]
        owner = (covers * order).amax(0) - 1  # (S, S)

        pos = owner >= 0
        labels[pos] = gt_classes[hit][owner[pos]]
        if keep_overlaps:
            k_idx, pos_cells = covers.flatten(1).nonzero(as_tuple=True)
            owners = hit[k_idx]
        else:
            pos_cells = pos.flatten().nonzero().flatten()
            owners = hit[owner.flatten()[pos_cells]]
        small = small_cache[factor][owners]
        mask_targets = small.new_zeros((len(pos_cells), mh, mw))
        sh, sw = min(mh, small.shape[1]), min(mw, small.shape[2])
        mask_targets[:, :sh, :sw] = small[:, :sh, :sw]
        results.append(LevelTargets(labels, pos_cells, mask_targets))
    return results


def padded_gt_masks(inst: Instances, padded_hw: Tuple[int, int], device) -> Tensor:
    """gt masks of one image as (M, H, W) bool at the padded batch size.

    An image without objects has no ``gt_masks`` (Detectron2 makes them only from
    annotations): it gets (0, H, W) and trains as a negative.
    """
    if not inst.has("gt_masks") and len(inst) == 0:
        return torch.zeros((0, *padded_hw), dtype=torch.bool, device=device)
    if not inst.has("gt_masks"):
        raise ValueError(
            "SOLO trains on instance masks but the inputs have no gt_masks: use annotations "
            "with 'segmentation' and set MODEL.MASK_ON True (INPUT.MASK_FORMAT polygon or "
            "bitmask; a LazyConfig's mapper: use_instance_mask=True)"
        )
    m = inst.gt_masks
    h, w = inst.image_size
    if isinstance(m, PolygonMasks):
        m = BitMasks.from_polygon_masks(m, h, w)
    t = m.tensor if isinstance(m, BitMasks) else torch.as_tensor(m)
    t = t.to(device=device, dtype=torch.bool)
    out = torch.zeros((len(t), *padded_hw), dtype=torch.bool, device=device)
    out[:, : t.shape[1], : t.shape[2]] = t
    return out


def assign_targets(
    gt: List[Instances],
    padded_hw: Tuple[int, int],
    *,
    num_classes: int,
    head_options: Optional[Dict[str, Any]] = None,
    **kwargs: Any,
) -> List[List[LevelTargets]]:
    """Per image, per level targets of a batch (:func:`assign_targets_single` on each image,
    ``kwargs`` and the head's ``head_options`` passed on).

    Args:
        gt: per image ``Instances`` with gt_boxes, gt_classes and gt_masks (bit masks or
            polygons) at the image's size inside the padded batch ``padded_hw``.
    """
    targets = []
    for inst in gt:
        classes = inst.gt_classes
        if len(classes) and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"gt_classes {classes.unique().tolist()} outside [0, {num_classes}); check the "
                "model's class count (MODEL.SOLO.NUM_CLASSES, model.num_classes) against the "
                "dataset"
            )
        device = inst.gt_boxes.tensor.device
        targets.append(
            assign_targets_single(
                inst.gt_boxes.tensor,
                classes,
                padded_gt_masks(inst, padded_hw, device),
                num_classes=num_classes,
                **kwargs,
                **(head_options or {}),
            )
        )
    return targets
