"""mmdet 3.3.0 solo_r101_fpn_8xb8-lsj-200e_coco: SOLO_R50_LSJ_200e with ResNet-101."""
from .SOLO_R50_LSJ_200e import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101
train.init_checkpoint = "torchvision://resnet101"
train.output_dir = "output/SOLO_R101_LSJ_200e"
