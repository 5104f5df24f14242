"""Quick start: SOLOv2 (dynamic mask kernels on unified mask features), ResNet-18-FPN from
scratch on the shapes dataset (the LazyConfig twin of SOLOv2_R18_shapes.yaml).

    python train_net.py --config-file configs/quick_schedules/SOLOv2_R18_shapes.py
"""
from ..common.models.solov2 import model as solov2
from .SOLO_R18_shapes import dataloader, lr_multiplier, model, optimizer, train

model.head = solov2.head
model.head.feat_channels = 128
model.head.stacked_convs = 4
model.head.num_grids = [24, 20, 16, 12, 8]
# unified mask features at 1/4 scale from p2..p5
model.head.mask_feat_channels = 64
model.head.mask_out_channels = 128
del solov2
train.output_dir = "output/quick_schedules/SOLOv2_R18_shapes"
