"""mmdet 3.3.0 solov2-light_r18_fpn_ms-3x_coco (29.7 mask AP): SOLOv2_Light_R50_3x with
ResNet-18 (the LazyConfig twin of SOLOv2_Light_R18_3x.yaml)."""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import ResNet

from .SOLOv2_Light_R50_3x import dataloader, lr_multiplier, model, optimizer, train

# basic blocks (FPN inputs 64, 128, 256, 512), which take no stride_in_1x1
model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
train.init_checkpoint = "torchvision://resnet18"
train.output_dir = "output/SOLOv2_Light_R18_3x"
