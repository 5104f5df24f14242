"""mmdet 3.3.0 solov2-light_r50-dcn_fpn_ms-3x_coco (no published AP in its metafile): DCNv2 in res3..res5 and in
the last stacked conv of the head, 3 stacked convs, the light scale ranges of Decoupled SOLO
light (the LazyConfig twin of SOLOv2_Light_R50_DCN_3x.yaml)."""
from detectron2.config import LazyCall as L

from solo_d2.modeling.backbone import resnet_stages

from .SOLOv2_Light_R50_3x import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.stages = L(resnet_stages)(
    depth=50,
    norm="FrozenBN",
    stride_in_1x1=False,
    deform_on_per_stage=[False, True, True, True],  # mmdet stage_with_dcn
    deform_modulated=True,  # DCNv2
    deform_num_groups=1,
)
model.head.stacked_convs = 3
model.scale_ranges = [[1, 64], [32, 128], [64, 256], [128, 512], [256, 2048]]
model.head.dcn_type = "DCNv2"
model.head.dcn_apply_to_all_conv = False
train.output_dir = "output/SOLOv2_Light_R50_DCN_3x"
