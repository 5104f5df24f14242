"""Quick start: vanilla SOLO, ResNet-18-FPN from scratch on the built-in shapes dataset, about
10 minutes on a 2-core CPU (the LazyConfig twin of SOLO_R18_shapes.yaml, whose
Base-Shapes-R18.yaml says why each value differs from COCO's).

    python train_net.py --config-file configs/quick_schedules/SOLO_R18_shapes.py
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet

from ..common.coco_schedule import multistep
from ..common.data.coco import dataloader
from ..common.models.solo import model
from ..common.optim import AdamW as optimizer
from ..common.train import train

# ResNet-18 from scratch: GroupNorm, every stage trained; FPN and head at 128 channels
bottom_up = model.backbone.bottom_up
bottom_up.stem.norm = "GN"
bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="GN")
bottom_up.freeze_at = 0
model.backbone.out_channels = 128
model.num_classes = 3
model.head.feat_channels = 128
model.head.stacked_convs = 4
# 192 px images: cells of 8, 10, 12, 16 and 24 px
model.head.num_grids = [24, 20, 16, 12, 8]
model.scale_ranges = [[1, 48], [24, 96], [48, 192], [96, 384], [192, 2048]]
model.pos_scale = 0.3
del bottom_up

dataloader.train.dataset.names = "solo_shapes_train"
dataloader.test.dataset.names = "solo_shapes_val"
# images are already 192 px: no resize happens (Detectron2's PIL resize)
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(192,), max_size=192, sample_style="choice"),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=192, max_size=192, sample_style="choice")
]
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1

optimizer.lr = 0.002
optimizer.weight_decay = 1e-4
train.clip_grad.enabled = True  # one norm over all gradients, as mmdet's SOLOv2
train.clip_grad.max_norm = 35.0
train.clip_grad.norm_type = 2.0
# 1,800 iterations (7,200 images); lr / 10 at 80 % of the schedule
train.max_iter = 1800
lr_multiplier = multistep(max_iter=1800, milestones=[1440], warmup_iters=200, warmup_factor=0.005)
train.checkpointer.period = 300
train.log_period = 100
train.eval_period = 0  # evaluate once, at the end (about 10 s)
train.device = "cpu"
train.init_checkpoint = ""  # from scratch: no ImageNet weights needed
train.output_dir = "output/quick_schedules/SOLO_R18_shapes"
