"""Dice and focal loss against hand-computed values."""
import math

import pytest
import torch

from solo_d2.layers.losses import category_focal_loss, dice_loss


def test_dice_loss_by_hand():
    probs = torch.tensor([[[0.5, 0.5], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]]])
    # first: sum(pt) = 1.5, sum(p^2) = 1.5, sum(t^2) = 2; second: pt = 0 -> loss 1
    expected = [1 - 2 * 1.5 / (1.5 + 1e-3 + 2 + 1e-3), 1.0]
    assert dice_loss(probs, target).tolist() == pytest.approx(expected, rel=1e-6)


def test_dice_loss_empty_target_and_pred_is_finite():
    loss = dice_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4))
    assert torch.isfinite(loss).all() and loss.item() == pytest.approx(1.0)


def test_focal_loss_by_hand():
    # Two cells, two classes, all logits 0 (p = 0.5, (1 - p_t)^2 = 0.25, ce = ln 2).
    # Cell 0 is class 0: one positive (alpha 0.25) and one negative (0.75) term.
    # Cell 1 is background (label 2): two negative terms.
    logits = torch.zeros(2, 2)
    labels = torch.tensor([0, 2])
    ln2 = math.log(2)
    total = 0.25 * 0.25 * ln2 + 3 * 0.75 * 0.25 * ln2
    loss = category_focal_loss(logits, labels, 2, alpha=0.25, gamma=2.0, normalizer=2.0)
    assert loss.item() == pytest.approx(total / 2.0, rel=1e-6)


def test_focal_loss_confident_correct_is_small():
    logits = torch.tensor([[8.0, -8.0]])
    loss = category_focal_loss(logits, torch.tensor([0]), 2, 0.25, 2.0, 1.0)
    assert loss.item() < 1e-6
