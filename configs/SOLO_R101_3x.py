"""mmdet 3.3.0 SOLO with a ResNet-101 backbone on the 3x multi-scale schedule (solo_r50_fpn_3x_coco
with depth=101, torchvision://resnet101; the LazyConfig twin of SOLO_R101_3x.yaml)."""
from .SOLO_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101
train.init_checkpoint = "torchvision://resnet101"
train.output_dir = "output/SOLO_R101_3x"
