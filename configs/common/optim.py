"""Optimizers with the parameter groups solo_d2's yaml configs give them (solo_d2/solver/build.py):
Detectron2's ``get_default_optimizer_params``, every parameter decayed (mmdet decays norms
too: weight_decay_norm = weight_decay).

``optimizer.params.model`` is set to the model before instantiating, as in Detectron2.
Gradient clipping over all parameters together (mmdet's ``clip_grad``) is ``train.clip_grad``.
"""
import torch
from detectron2.config import LazyCall as L
from detectron2.solver.build import get_default_optimizer_params

# mmdet's SOLO schedules: SGD, lr 0.01 at 16 images per batch (yaml SOLVER.OPTIMIZER "SGD")
SGD = L(torch.optim.SGD)(
    params=L(get_default_optimizer_params)(
        base_lr="${..lr}", weight_decay_norm="${..weight_decay}"
    ),
    lr=0.01,
    momentum=0.9,
    weight_decay=1e-4,
    nesterov=False,
    foreach=True,
)

# the from-scratch quick starts (yaml SOLVER.OPTIMIZER "ADAMW"): torch's fused AdamW, as the
# yaml path builds it
AdamW = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        base_lr="${..lr}", weight_decay_norm="${..weight_decay}"
    ),
    lr=0.002,
    betas=(0.9, 0.999),
    weight_decay=1e-4,
    fused=True,
)
