"""Baseline for the quick start: Detectron2's own Mask R-CNN (its configs/common/models/
mask_rcnn_fpn.py), R18-FPN from scratch on the built-in shapes dataset with the backbone,
FPN width, input, optimizer and schedule shape of the SOLO quick starts (the LazyConfig twin
of MaskRCNN_R18_shapes.yaml; results: docs/quick_start.md).

    python train_net.py --config-file configs/quick_schedules/MaskRCNN_R18_shapes.py
"""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from ..common.coco_schedule import multistep
from .SOLO_R18_shapes import dataloader, optimizer, train
from .SOLO_R18_shapes import model as solo

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone = solo.backbone  # R18-FPN at 128 channels, GroupNorm, nothing frozen
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"
# 32-96 px objects: anchors of 16 to 256 px on p2..p6 (Detectron2's default starts at 32)
rpn = model.proposal_generator
rpn.head.in_channels = 128
rpn.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
rpn.pre_nms_topk = (1000, 1000)
rpn.post_nms_topk = (500, 500)
roi = model.roi_heads
roi.num_classes = 3
roi.batch_size_per_image = 256
roi.box_head.input_shape = L(ShapeSpec)(channels=128, height=7, width=7)
roi.box_head.fc_dims = [256, 256]
roi.box_predictor.input_shape = L(ShapeSpec)(channels=256)
roi.box_predictor.loss_weight = {"loss_box_reg": 1.0}
roi.mask_head.input_shape = L(ShapeSpec)(channels=128, height=14, width=14)
roi.mask_head.conv_dims = [128, 128, 128, 128, 128]
del rpn, roi, solo

# About 1 s per iteration on an idle 2-core CPU: 680 iterations, lr / 10 at 80 %
train.max_iter = 680
lr_multiplier = multistep(max_iter=680, milestones=[544], warmup_iters=200, warmup_factor=0.005)
train.checkpointer.period = 170
train.output_dir = "output/quick_schedules/MaskRCNN_R18_shapes"
