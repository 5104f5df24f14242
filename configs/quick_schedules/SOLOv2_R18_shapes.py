"""Quick start: SOLOv2 (dynamic mask kernels on unified mask features), ResNet-18-FPN from
scratch on the shapes dataset, in under 10 minutes on a 2-core CPU with bf16 units (the
LazyConfig twin of SOLOv2_R18_shapes.yaml: bf16 autocast, 64-channel FPN, head and mask
features, the category loss weighted 3 as the mask loss, 1000 iterations of 8 images).

    python train_net.py --config-file configs/quick_schedules/SOLOv2_R18_shapes.py
"""
from ..common.coco_schedule import multistep
from ..common.models.solov2 import model as solov2
from .SOLO_R18_shapes import dataloader, model, optimizer, train

model.backbone.out_channels = 64
model.head = solov2.head
model.head.feat_channels = 64
model.head.stacked_convs = 4
model.head.num_grids = [24, 20, 16, 12, 8]
# unified mask features at 1/4 scale from p2..p5
model.head.mask_feat_channels = 64
model.head.mask_out_channels = 64
del solov2
# the category loss weighted as the mask loss (3, not mmdet's 1): at ten minutes the errors
# left were wrong classes (docs/quick_start.md)
model.focal_weight = 3.0

dataloader.train.total_batch_size = 8
# bf16 autocast ("auto"), fp32 on a CPU without bf16 units; model.channels_last stays False:
# NCHW is the faster layout for these small bf16 convolutions
train.amp.enabled = True
# 1,000 iterations (8,000 images); lr / 10 at 80 % of the schedule
train.max_iter = 1000
lr_multiplier = multistep(max_iter=1000, milestones=[800], warmup_iters=200, warmup_factor=0.005)
train.output_dir = "output/quick_schedules/SOLOv2_R18_shapes"
