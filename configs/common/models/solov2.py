"""SOLOv2's model (mmdet 3.3.0 solov2_r50_fpn_1x_coco, configs/SOLOv2_R50_1x.yaml): SOLO's
backbone and targets, a SOLOV2Head (4 stacked 512-channel GN convs, dynamic 1x1 kernels on
unified mask features built from the first four levels at stride 4)."""
from detectron2.config import LazyCall as L

from solo_d2.modeling import SOLOV2Head

from .solo import model

model.head = L(SOLOV2Head)(
    num_classes="${..num_classes}",
    feat_channels=512,
    stacked_convs=4,
    num_grids=[40, 36, 24, 16, 12],
    cls_down_index=0,
    norm="GN",
    dcn_type="",
    dcn_apply_to_all_conv=True,
    prior_prob=0.01,
    recompute_norm_act=True,
    # mmdet mask_feature_head
    mask_feat_channels=128,
    mask_start_level=0,
    mask_end_level=3,
    mask_out_channels=256,
    mask_stride=4,
    mask_dcn_type="",
    dynamic_conv_size=1,
)
