"""Decoupled SOLO's model (mmdet 3.3.0 decoupled-solo_r50_fpn_1x_coco): SOLO's, with X and Y
mask branches instead of S^2 mask maps per level."""
from solo_d2.modeling import DecoupledSOLOHead

from .solo import model

model.head._target_ = DecoupledSOLOHead
