"""SOLO losses: dice loss on positive cells' masks, focal loss (fvcore's) on all grid cells."""
from dataclasses import dataclass
from typing import Dict, List

import torch
import torch.distributed as dist
from detectron2.utils import comm
from fvcore.nn import sigmoid_focal_loss
from torch import Tensor
from torch.nn import functional as F

from .targets import LevelTargets

__all__ = ["dice_loss", "category_focal_loss", "LossWeights", "solo_losses"]


def dice_loss(probs: Tensor, targets: Tensor, eps: float = 1e-3) -> Tensor:
    """Per-mask dice loss of the V-Net paper, as mmdet's ``DiceLoss(naive_dice=False)``.

    Args:
        probs: (P, h, w) mask probabilities.
        targets: (P, h, w) binary targets.
    Returns:
        (P,) ``1 - 2 sum(p t) / (sum(p^2) + eps + sum(t^2) + eps)``.
    """
    p = probs.flatten(1)
    t = targets.flatten(1).float()
    inter = (p * t).sum(1)
    return 1 - 2 * inter / ((p * p).sum(1) + eps + (t * t).sum(1) + eps)


def category_focal_loss(
    logits: Tensor, labels: Tensor, num_classes: int, alpha: float, gamma: float, normalizer: float
) -> Tensor:
    """Sigmoid focal loss over all cells, summed and divided by ``normalizer``.

    Args:
        logits: (L, num_classes) category logits of all cells.
        labels: (L,) int64, ``num_classes`` meaning background.
    """
    targets = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(logits.dtype)
    loss = sigmoid_focal_loss(logits, targets, alpha=alpha, gamma=gamma, reduction="sum")
    return loss / normalizer


@dataclass(frozen=True)
class LossWeights:
    """MODEL.SOLO.LOSS.*: the dice weight and the focal loss's alpha, gamma and weight."""

    dice_weight: float = 3.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    focal_weight: float = 1.0


def _mean_over_processes(count: int, device: torch.device) -> float:
    """``count`` averaged over all processes (itself in a single process)."""
    world = comm.get_world_size()
    if world == 1:
        return float(count)
    total = torch.tensor([float(count)], device=device)
    dist.all_reduce(total)
    return total.item() / world


def solo_losses(
    head,
    cls_logits: List[Tensor],
    mask_inputs: list,
    targets: List[List[LevelTargets]],
    num_classes: int,
    weights: LossWeights,
) -> Dict[str, Tensor]:
    """Focal loss over all cells + dice loss over positive cells, whose masks alone the head
    projects (``head.mask_probs``).

    Args:
        head: the SOLO-family head that produced ``cls_logits`` (per level (N, C, S, S)) and
            ``mask_inputs``.
        targets: per image, per level targets (:func:`~solo_d2.layers.targets.assign_targets`).
    Returns:
        {"loss_mask", "loss_cls"}, weighted.
    """
    dice_terms, labels_all = [], []
    num_pos = 0
    for lvl in range(len(cls_logits)):
        per_img = [t[lvl] for t in targets]
        labels_all.append(torch.stack([t.labels for t in per_img]).flatten())
        cells = torch.cat([t.pos_cells for t in per_img])
        if len(cells) == 0:
            continue
        batch_idx = torch.cat([torch.full_like(t.pos_cells, i) for i, t in enumerate(per_img)])
        probs = head.mask_probs(mask_inputs, lvl, batch_idx, cells)
        dice_terms.append(dice_loss(probs, torch.cat([t.mask_targets for t in per_img])))
        # unique positive cells (a cell may carry several targets, see target_options)
        num_pos += sum(len(torch.unique(t.pos_cells)) for t in per_img)

    # Lazy projection leaves the mask branch of levels (or batches) without positives out of
    # the graph; a zero-weight touch keeps every parameter in it, as
    # DistributedDataParallel requires.
    touch = sum(p.sum() for p in head.mask_branch_parameters()) * 0.0
    # Normalised by the mean positive count over processes, so that N processes of B images
    # give the losses and gradients of one process of N * B images.
    mean_pos = _mean_over_processes(num_pos, cls_logits[0].device)
    if num_pos > 0:
        loss_mask = torch.cat(dice_terms).sum() / mean_pos
    else:
        loss_mask = cls_logits[0].sum() * 0.0
    flat_logits = torch.cat([x.permute(0, 2, 3, 1).reshape(-1, num_classes) for x in cls_logits])
    loss_cls = category_focal_loss(
        flat_logits,
        torch.cat(labels_all),
        num_classes,
        weights.focal_alpha,
        weights.focal_gamma,
        # mmdet's num_pos + 1, the + 1 shared out over the processes
        normalizer=mean_pos + 1 / comm.get_world_size(),
    )
    return {
        "loss_mask": loss_mask * weights.dice_weight + touch,
        "loss_cls": loss_cls * weights.focal_weight,
    }
