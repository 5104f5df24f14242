"""SOLO losses: dice loss on positive cells' masks, focal loss (fvcore's) on all grid cells."""
from fvcore.nn import sigmoid_focal_loss
from torch import Tensor
from torch.nn import functional as F

__all__ = ["dice_loss", "category_focal_loss"]


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
