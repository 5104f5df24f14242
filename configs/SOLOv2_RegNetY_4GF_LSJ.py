"""SOLOv2 on RegNetY-4.0GF: the backbone, norm and 100-epoch schedule of Detectron2's
configs/new_baselines/mask_rcnn_regnety_4gf_dds_FPN_100ep_LSJ.py (RegNetY-4.0GF + FPN with
SyncBN, trained from scratch, large-scale jitter at 1024 px, 64 images per batch, mixed
precision); SOLOv2_R50_1x's head; the optimizer of mmdet's SOLO LSJ recipe
(SOLO_R50_LSJ_200e.py: SGD lr 0.04, weight decay 4e-5, gradient norm clipped at 35), as
Detectron2's lr 0.1 is Mask R-CNN's.

    python train_net.py --config-file configs/SOLOv2_RegNetY_4GF_LSJ.py --num-gpus 8
"""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import RegNet
from detectron2.modeling.backbone.regnet import ResBottleneckBlock, SimpleStem

from .common.coco_schedule import multistep
from .SOLOv2_R50_LSJ_200e import dataloader, model, optimizer, train

# Detectron2's RegNetY-4.0GF (configs/new_baselines, COCO-InstanceSegmentation), s1..s4 at
# strides 4..32: the FPN names its outputs p2..p6 as for a ResNet
model.backbone.bottom_up = L(RegNet)(
    stem_class=SimpleStem,
    stem_width=32,
    block_class=ResBottleneckBlock,
    depth=22,
    w_a=31.41,
    w_0=96,
    w_m=2.24,
    group_width=64,
    se_ratio=0.25,
    norm="SyncBN",
    out_features=["s1", "s2", "s3", "s4"],
    freeze_at=0,
)
model.backbone.norm = "SyncBN"
train.init_checkpoint = ""  # from scratch, as Detectron2's new baselines
train.cudnn_benchmark = True  # RegNets benefit (Detectron2)
train.ddp.fp16_compression = True
# Detectron2's 100 epochs: 184,375 iterations of 64 images; lr / 10 at 163,889 and 177,546;
# warm-up 500 iterations from 0.067
train.max_iter = 184375
lr_multiplier = multistep(
    max_iter=184375, milestones=[163889, 177546], warmup_iters=500, warmup_factor=0.067
)
train.checkpointer.period = 18336  # 10 epochs of 1,833 iterations
train.eval_period = 18336
train.output_dir = "output/SOLOv2_RegNetY_4GF_LSJ"
