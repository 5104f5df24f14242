"""Whether converted weights fit solo_d2's model exactly, checked by building the model."""
from typing import TYPE_CHECKING, Dict

import torch

from ..convert.mmdet.errors import require

if TYPE_CHECKING:
    from detectron2.config import CfgNode

__all__ = ["verify_loadable"]


def verify_loadable(cfg: "CfgNode", model_state: Dict[str, torch.Tensor]) -> None:
    """Build solo_d2's model from ``cfg`` (CPU) and check the converted weights fit it exactly:
    no missing or unexpected keys and equal shapes."""
    # SOLO and PanopticSOLO are in META_ARCH_REGISTRY: importing this module imported
    # solo_d2, whose __init__ registers them
    from detectron2.modeling import build_model

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    model = build_model(cfg)
    ours = {k: v for k, v in model.state_dict().items() if k not in ("pixel_mean", "pixel_std")}
    missing = sorted(set(ours) - set(model_state))
    unexpected = sorted(set(model_state) - set(ours))
    bad = [k for k in set(ours) & set(model_state) if ours[k].shape != model_state[k].shape]
    require(not (missing or unexpected or bad),
            f"converted weights do not fit the model: missing {missing[:8]}, unexpected "
            f"{unexpected[:8]}, shape mismatch "
            f"{[(k, tuple(model_state[k].shape), tuple(ours[k].shape)) for k in bad[:8]]}")
