"""ResNet stages for LazyConfigs, as Detectron2's ``build_resnet_backbone`` makes them.

Detectron2's lazy configs write ``stages=L(ResNet.make_default_stages)(depth=50, ...)``,
which passes the same arguments to every stage: it cannot make deformable blocks in some
stages only (mmdet's ``stage_with_dcn``) nor ResNeXt's per-stage bottleneck widths.
:func:`resnet_stages` takes ``MODEL.RESNETS``'s keys as arguments and returns the stages that
``build_resnet_backbone`` itself builds from them, so that a LazyConfig and a yaml config
name the same backbone (same modules, same state-dict keys)::

    bottom_up=L(ResNet)(
        stem=L(BasicStem)(in_channels=3, out_channels=64, norm="FrozenBN"),
        stages=L(resnet_stages)(depth=101, num_groups=64, width_per_group=4,
                                deform_on_per_stage=[False, True, True, True],
                                deform_modulated=True),
        out_features=["res2", "res3", "res4", "res5"], freeze_at=2)
"""
from typing import List, Sequence

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.resnet import build_resnet_backbone
from torch import nn

__all__ = ["resnet_stages"]


def resnet_stages(
    depth: int,
    *,
    norm: str = "FrozenBN",
    stride_in_1x1: bool = False,
    num_groups: int = 1,
    width_per_group: int = 64,
    stem_out_channels: int = 64,
    res2_out_channels: int = 0,
    res5_dilation: int = 1,
    deform_on_per_stage: Sequence[bool] = (False, False, False, False),
    deform_modulated: bool = False,
    deform_num_groups: int = 1,
) -> List[List[nn.Module]]:
    """The four stages (res2..res5) for ``ResNet(stem, stages, ...)``.

    Args: ``MODEL.RESNETS.*`` (DEPTH, NORM, STRIDE_IN_1X1, NUM_GROUPS, WIDTH_PER_GROUP,
    STEM_OUT_CHANNELS, RES2_OUT_CHANNELS, RES5_DILATION, DEFORM_*), with Detectron2's
    defaults except ``stride_in_1x1`` (False: torchvision / mmdet "pytorch" style, as
    solo_d2's configs) and ``res2_out_channels`` (0: the depth's usual width, 64 for R18/R34,
    256 otherwise). Freezing is the ResNet's own ``freeze_at``.
    """
    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.DEPTH = depth
    r.NORM = norm
    r.STRIDE_IN_1X1 = stride_in_1x1
    r.NUM_GROUPS = num_groups
    r.WIDTH_PER_GROUP = width_per_group
    r.STEM_OUT_CHANNELS = stem_out_channels
    r.RES2_OUT_CHANNELS = res2_out_channels or (64 if depth < 50 else 256)
    r.RES5_DILATION = res5_dilation
    r.DEFORM_ON_PER_STAGE = list(deform_on_per_stage)
    r.DEFORM_MODULATED = deform_modulated
    r.DEFORM_NUM_GROUPS = deform_num_groups
    r.OUT_FEATURES = ["res2", "res3", "res4", "res5"]  # all four stages
    cfg.MODEL.BACKBONE.FREEZE_AT = 0  # the caller's ResNet freezes (freeze_at)
    resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    return [list(stage) for stage in resnet.stages]
