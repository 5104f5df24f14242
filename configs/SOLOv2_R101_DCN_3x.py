"""mmdet 3.3.0 solov2_r101-dcn_fpn_ms-3x_coco (41.2 mask AP): DCNv2 in res3..res5 and in the
whole head (the LazyConfig twin of SOLOv2_R101_DCN_3x.yaml)."""
from detectron2.config import LazyCall as L

from solo_d2.modeling.backbone import resnet_stages

from .SOLOv2_R101_3x import dataloader, lr_multiplier, model, optimizer, train

# make_default_stages cannot put deformable blocks in some stages only
model.backbone.bottom_up.stages = L(resnet_stages)(
    depth=101,
    norm="FrozenBN",
    stride_in_1x1=False,
    deform_on_per_stage=[False, True, True, True],  # mmdet stage_with_dcn
    deform_modulated=True,  # DCNv2
    deform_num_groups=1,
)
model.head.dcn_type = "DCNv2"
model.head.dcn_apply_to_all_conv = True
model.head.mask_dcn_type = "DCNv2"
train.output_dir = "output/SOLOv2_R101_DCN_3x"
