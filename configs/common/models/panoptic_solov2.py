"""Panoptic SOLOv2 (SOLOv2 paper, section 3.2; configs/SOLOv2_Panoptic_R50_1x.yaml): SOLOv2's
model (common/models/solov2.py) with a stuff branch, Detectron2's SemSegFPNHead on p2..p5
beside the mask-feature branch (Panoptic FPN's settings: 128 channels, GN, loss weight 0.5),
and Panoptic FPN's merge settings (MODEL.PANOPTIC_FPN.COMBINE.*).

``sem_seg_head.input_shape={"mask_features": L(ShapeSpec)(stride=4, channels=<mask_out_channels>)}``
makes the branch read SOLOv2's unified mask features instead (docs/PANOPTIC.md)."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead

from solo_d2.modeling import PanopticSOLO

from .solov2 import model

model._target_ = PanopticSOLO
model.sem_seg_head = L(SemSegFPNHead)(
    input_shape={
        f: L(ShapeSpec)(stride=s, channels="${....backbone.out_channels}")
        for f, s in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])
    },
    ignore_value=255,
    num_classes=54,  # COCO's 53 stuff classes + "things"
    conv_dims=128,
    common_stride=4,
    loss_weight=0.5,
    norm="GN",
)
model.combine_enabled = True
model.combine_overlap_thresh = 0.5
model.combine_stuff_area_thresh = 4096
model.combine_instances_score_thresh = 0.5
