"""mmdet 3.3.0 solov2-light_r34_fpn_ms-3x_coco (no published AP in its metafile): SOLOv2_Light_R50_3x with
ResNet-34 (the LazyConfig twin of SOLOv2_Light_R34_3x.yaml)."""
from .SOLOv2_Light_R18_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 34
train.init_checkpoint = "torchvision://resnet34"
train.output_dir = "output/SOLOv2_Light_R34_3x"
