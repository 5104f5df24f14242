"""The operations SOLO-family models are made of, with no model around them (as Detectron2's
layers/): conv blocks, mixed-precision regions, grid targets, losses, mask scoring, Matrix NMS.

* :mod:`.blocks`: conv + norm + activation, CoordConv features, deformable conv, conv towers;
* :mod:`.precision`: which dtype autocast runs in and the regions that stay fp32;
* :mod:`.targets`: ground truth -> per-level grid labels and mask targets;
* :mod:`.losses`: dice loss on positive cells' masks, focal loss on all grid cells;
* :mod:`.postprocess`: candidates -> mask scoring -> Matrix NMS -> masks, scores, boxes.
"""
from .blocks import ConvNormAct, DeformConv, conv_norm_relu, conv_tower, coord_features, run_tower
from .losses import LossWeights, category_focal_loss, dice_loss, solo_losses
from .postprocess import InferenceSettings, mask_matrix_nms, point_nms
from .precision import autocast_for, fp32_ops, fp32_region, to_fp32
from .targets import LevelTargets, assign_targets

__all__ = [
    "ConvNormAct",
    "DeformConv",
    "conv_norm_relu",
    "conv_tower",
    "coord_features",
    "run_tower",
    "LossWeights",
    "category_focal_loss",
    "dice_loss",
    "solo_losses",
    "InferenceSettings",
    "mask_matrix_nms",
    "point_nms",
    "autocast_for",
    "fp32_ops",
    "fp32_region",
    "to_fp32",
    "LevelTargets",
    "assign_targets",
]
