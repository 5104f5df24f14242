"""SOLO's model, value for value as mmdet 3.3.0's solo_r50_fpn_1x_coco and configs/Base-SOLO.yaml:
ResNet-50-FPN (torchvision "pytorch" style, stem and res2 frozen, FrozenBN), p2..p6 of 256
channels, and a SOLOHead (7 stacked 256-channel GN convs, grids 40..12).

The head is given without input_shape: SOLO builds it for the backbone outputs named by
``head_in_features``, whatever their channels and number (docs/LAZYCONFIG.md).
"""
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from solo_d2.modeling import SOLO, InferenceSettings, SOLOHead

model = L(SOLO)(
    backbone=L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
            stages=L(ResNet.make_default_stages)(depth=50, stride_in_1x1=False, norm="FrozenBN"),
            out_features=["res2", "res3", "res4", "res5"],
            freeze_at=2,  # mmdet frozen_stages=1: stem and res2 frozen
        ),
        in_features="${.bottom_up.out_features}",
        out_channels=256,
        top_block=L(LastLevelMaxPool)(),
    ),
    head=L(SOLOHead)(
        num_classes="${..num_classes}",
        feat_channels=256,
        stacked_convs=7,
        num_grids=[40, 36, 24, 16, 12],
        cls_down_index=0,
        norm="GN",
        dcn_type="",
        prior_prob=0.01,
        recompute_norm_act=True,
    ),
    head_in_features=["p2", "p3", "p4", "p5", "p6"],
    num_classes=80,
    # after SOLO's level resizing (checked against the backbone's strides)
    strides=[8, 8, 16, 32, 32],
    scale_ranges=[[1, 96], [48, 192], [96, 384], [192, 768], [384, 2048]],
    pos_scale=0.2,
    drop_vanished_targets=True,
    dice_weight=3.0,
    focal_alpha=0.25,
    focal_gamma=2.0,
    focal_weight=1.0,
    inference_settings=L(InferenceSettings)(
        score_thresh=0.1,
        mask_thresh=0.5,
        nms_pre=500,
        filter_thresh=0.05,
        kernel="gaussian",
        sigma=2.0,
        max_per_img=100,
    ),
    inference_amp="",  # "bfloat16" / "float16": autocast at inference
    channels_last=False,  # True (NHWC) is faster under autocast, NCHW is mmdet's fp32 order
    # torchvision / mmdet normalisation of RGB input (the mapper's image_format)
    pixel_mean=[123.675, 116.28, 103.53],
    pixel_std=[58.395, 57.12, 57.375],
)
