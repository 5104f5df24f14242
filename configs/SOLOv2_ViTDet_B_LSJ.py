"""SOLOv2 on ViTDet's plain ViT-B: Detectron2's ViT-B/16 and SimpleFeaturePyramid exactly as
its configs/common/models/mask_rcnn_vitdet.py builds them (window attention, 4 global blocks,
relative positions, drop path 0.1, p2..p6 at 256 channels, inputs padded to 1024 x 1024),
MAE ImageNet initialisation, and ViTDet's COCO recipe (projects/ViTDet/configs/COCO/
mask_rcnn_vitdet_b_100ep.py): large-scale jitter at 1024 px, 1024 px test images, AdamW with
layer-wise lr decay 0.7, 64 images per batch, mixed precision, 100 epochs. The head is
SOLOv2_R50_1x's (mmdet's SOLOv2), built for the pyramid's levels.

    python train_net.py --config-file configs/SOLOv2_ViTDet_B_LSJ.py --num-gpus 8
"""
from functools import partial

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from solo_d2.data.transforms import CV2ResizeShortestEdge

from .common.coco_schedule import multistep
from .common.data.coco_lsj import dataloader
from .common.models.solov2 import model
from .common.optim import AdamW as optimizer
from .common.train import train

model.backbone = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model.backbone
model.channels_last = True  # NHWC: faster under autocast
# the pyramid pads every image to 1024 x 1024 (square_pad): training batches are that size
dataloader.test.mapper.augmentations = [
    L(CV2ResizeShortestEdge)(short_edge_length=1024, max_size=1024, sample_style="choice")
]

train.init_checkpoint = (
    "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth?matching_heuristics=True"
)
train.amp.enabled = True
train.ddp.fp16_compression = True
train.clip_grad.enabled = True  # SOLOv2's (mmdet clip_grad max_norm 35)
train.clip_grad.max_norm = 35.0
train.clip_grad.norm_type = 2.0

optimizer.lr = 1e-4
optimizer.weight_decay = 0.1
optimizer.params.weight_decay_norm = 0.0
optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=12, lr_decay_rate=0.7)
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}

# ViTDet's 100 epochs: 184,375 iterations of 64 images (118,000 images per epoch as ViTDet
# counts them: 100.6 epochs of COCO's 117,266 with annotations); lr / 10 at 88.9 % and 96.3 %;
# warm-up 250 iterations from 0.001
train.max_iter = 184375
lr_multiplier = multistep(
    max_iter=184375, milestones=[163889, 177546], warmup_iters=250, warmup_factor=0.001
)
train.checkpointer.period = 18336  # 10 epochs of 1,833 iterations
train.eval_period = 18336
train.output_dir = "output/SOLOv2_ViTDet_B_LSJ"
