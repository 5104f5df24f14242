"""mmdet 3.3.0 solov2_r101_fpn_ms-3x_coco (no published AP in its metafile): the LazyConfig twin of
SOLOv2_R101_3x.yaml."""
from .SOLOv2_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.depth = 101
train.init_checkpoint = "torchvision://resnet101"
train.output_dir = "output/SOLOv2_R101_3x"
