"""mmdet 3.3.0 solov2_x101-dcn_fpn_ms-3x_coco (42.4 mask AP): ResNeXt-101 64x4d with DCNv2
in res3..res5 and in the whole head (the LazyConfig twin of SOLOv2_X101_DCN_3x.yaml)."""
from .SOLOv2_R101_DCN_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages.num_groups = 64
model.backbone.bottom_up.stages.width_per_group = 4
train.init_checkpoint = "open-mmlab://resnext101_64x4d"
train.output_dir = "output/SOLOv2_X101_DCN_3x"
