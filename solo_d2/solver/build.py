"""Optimizer: Detectron2's SGD or AdamW, with mmdet's gradient clipping (one norm over all
parameters) as an option."""
import torch
from detectron2.config import CfgNode
from detectron2.solver import build_optimizer
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

__all__ = ["build_solo_optimizer", "clip_full_model_gradients"]


_OPTIMIZERS = ("SGD", "ADAMW")


def _build_base_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER``: "SGD" is Detectron2's own ``build_optimizer``; "ADAMW" uses the
    same parameter groups (bias / norm learning-rate and weight-decay settings) and
    Detectron2's per-parameter clipping, with ``SOLVER.ADAMW_BETAS``. AdamW runs torch's fused
    kernel: the same update as its per-tensor loop, in one pass over each parameter (on a
    CPU the loop is a tenth of a quick-start training step, docs/quick_start.md)."""
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name not in _OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER is {cfg.SOLVER.OPTIMIZER!r}; expected one of {_OPTIMIZERS}")
    if name == "SGD":
        return build_optimizer(cfg, model)
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    optimizer = torch.optim.AdamW(
        params,
        lr=cfg.SOLVER.BASE_LR,
        betas=tuple(cfg.SOLVER.ADAMW_BETAS),
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
        fused=True,
    )
    return maybe_add_gradient_clipping(cfg, optimizer)


def build_solo_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Detectron2's optimizer (``SOLVER.OPTIMIZER`` "SGD", or "ADAMW"), plus
    ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"``.

    Detectron2's "norm" clips every parameter's gradient separately; mmdet's
    ``clip_grad=dict(max_norm=35, norm_type=2)`` (SOLOv2) clips the norm of all gradients
    together, which "full_model" does.
    """
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == "full_model"):
        return _build_base_optimizer(cfg, model)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    return clip_full_model_gradients(_build_base_optimizer(cfg, model), clip.CLIP_VALUE,
                                     clip.NORM_TYPE)


def clip_full_model_gradients(
    optimizer: torch.optim.Optimizer, max_norm: float, norm_type: float
) -> torch.optim.Optimizer:
    """``optimizer``, whose every step first clips the norm of all its parameters' gradients
    together to ``max_norm`` (mmdet's ``clip_grad``; a LazyConfig's ``train.clip_grad``)."""

    class FullModelGradientClipping(type(optimizer)):
        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
            return super().step(closure)

    # Swap the class in place, as Detectron2's own maybe_add_gradient_clipping does.
    optimizer.__class__ = FullModelGradientClipping
    return optimizer
