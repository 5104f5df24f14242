"""mmdet 3.3.0 solo_r18_fpn_8xb8-lsj-200e_coco: SOLO_R50_LSJ_200e with ResNet-18."""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet

from .SOLO_R50_LSJ_200e import dataloader, lr_multiplier, model, optimizer, train

# basic blocks (FPN inputs 64, 128, 256, 512), which take no stride_in_1x1
model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
train.init_checkpoint = "torchvision://resnet18"
train.output_dir = "output/SOLO_R18_LSJ_200e"
