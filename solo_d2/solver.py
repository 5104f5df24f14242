"""Optimizer with mmdet's gradient clipping (one norm over all parameters)."""
import torch
from detectron2.config import CfgNode
from detectron2.solver import build_optimizer

__all__ = ["build_solo_optimizer"]


def build_solo_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Detectron2's optimizer, plus ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"``.

    Detectron2's "norm" clips every parameter's gradient separately; mmdet's
    ``clip_grad=dict(max_norm=35, norm_type=2)`` (SOLOv2) clips the norm of all gradients
    together, which "full_model" does.
    """
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == "full_model"):
        return build_optimizer(cfg, model)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    optimizer = build_optimizer(cfg, model)
    max_norm, norm_type = clip.CLIP_VALUE, clip.NORM_TYPE

    class FullModelGradientClipping(type(optimizer)):
        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
            return super().step(closure)

    # Swap the class in place, as Detectron2's own maybe_add_gradient_clipping does.
    optimizer.__class__ = FullModelGradientClipping
    return optimizer
