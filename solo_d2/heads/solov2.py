"""SOLOv2's head (Wang et al., NeurIPS 2020): a dynamic kernel per grid cell applied to unified
mask features (semantics: mmdet 3.3.0's ``SOLOV2Head`` and ``MaskFeatModule``).

``mask_inputs[l]`` is the pair ``(kernel_feats_l (N, F, S_l, S_l), mask_feats (N, E, H/4, W/4))``.
``mask_probs`` evaluates the 3x3 ``conv_kernel`` at the requested cells only and convolves only
those kernels with the mask features: neither the S^2 kernels of a level nor their S^2 masks
are ever materialised.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.blocks import conv_norm_relu, conv_tower, coord_features
from .base import (
    SOLO_HEAD_REGISTRY,
    SOLOHeadBase,
    describe_levels,
    init_normal,
    resize_probs,
)

__all__ = ["SOLOV2Head", "MaskFeatModule"]


class MaskFeatModule(nn.Module):
    """SOLOv2's unified mask-feature branch.

    Level i (absolute index into the head's inputs, ``start_level <= i <= end_level``) goes
    through i (conv + x2 bilinear upsample) steps (level 0: one conv, no upsample), so every
    level lands at the finest input's scale; the deepest level gets CoordConv channels first.
    The sum goes through a 1x1 conv + norm + ReLU (``conv_pred``).
    """

    def __init__(
        self,
        in_channels: int,
        feat_channels: int,
        start_level: int,
        end_level: int,
        out_channels: int,
        norm: str = "GN",
        dcn_type: str = "",
    ) -> None:
        super().__init__()
        if not 0 <= start_level <= end_level:
            raise ValueError(
                f"MODEL.SOLO.MASK_FEAT.START_LEVEL={start_level} and END_LEVEL={end_level} must "
                "satisfy 0 <= START_LEVEL <= END_LEVEL"
            )
        self.start_level = start_level
        self.end_level = end_level
        self.convs_all_levels = nn.ModuleList()
        for i in range(start_level, end_level + 1):
            level = nn.Sequential()
            if i == 0:
                level.add_module("conv0", conv_norm_relu(in_channels, feat_channels, norm,
                                                         dcn_type=dcn_type))
            for j in range(i):
                chn = feat_channels if j > 0 else in_channels + (2 if i == end_level else 0)
                level.add_module(f"conv{j}", conv_norm_relu(chn, feat_channels, norm,
                                                            dcn_type=dcn_type))
                level.add_module(f"upsample{j}", nn.Upsample(scale_factor=2, mode="bilinear",
                                                             align_corners=False))
            self.convs_all_levels.append(level)
        self.conv_pred = conv_norm_relu(
            feat_channels, out_channels, norm, kernel_size=1, dcn_type=dcn_type
        )

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """per level (N, C, H_l, W_l) -> (N, out_channels, H_start, W_start)."""
        inputs = features[self.start_level : self.end_level + 1]
        if len(inputs) != self.end_level - self.start_level + 1:
            raise ValueError(
                f"mask features need levels {self.start_level}..{self.end_level} but the head "
                f"has {len(features)} (MODEL.SOLO.MASK_FEAT.END_LEVEL vs IN_FEATURES)"
            )
        out = self.convs_all_levels[0](inputs[0])
        for i in range(1, len(inputs)):
            x = inputs[i]
            if i == len(inputs) - 1:
                x = torch.cat([x, coord_features(x)], 1)
            out = out + self.convs_all_levels[i](x)
        return self.conv_pred(out)


@SOLO_HEAD_REGISTRY.register()
class SOLOV2Head(SOLOHeadBase):
    """SOLOv2: per level a category branch and a kernel branch (CoordConv input) on S x S grids,
    plus one mask-feature map at 1/4 scale; the mask of a cell is sigmoid(kernel_cell * mask_feats).

    DCN (MODEL.SOLO.DCN_TYPE) goes into every stacked conv of both branches, or only the last one
    with MODEL.SOLO.DCN_APPLY_TO_ALL_CONV False (the light head); MODEL.SOLO.MASK_FEAT.DCN_TYPE
    makes every conv of the mask-feature branch deformable (mmdet ``mask_feature_head.conv_cfg``).
    """

    @configurable
    def __init__(
        self,
        *,
        mask_feat_channels: int = 128,
        mask_start_level: int = 0,
        mask_end_level: int = 3,
        mask_out_channels: int = 256,
        mask_stride: int = 4,
        mask_dcn_type: str = "",
        dynamic_conv_size: int = 1,
        dcn_apply_to_all_conv: bool = True,
        input_shape: Optional[List[ShapeSpec]] = None,
        **kwargs,
    ):
        """The mask-feature branch's settings (``mask_*``: MODEL.SOLO.MASK_FEAT.*), the
        dynamic kernels' size and where DCN goes; the others are :class:`SOLOHeadBase`'s."""
        super().__init__(**kwargs)  # built below, once this head's settings are set
        if not 0 <= mask_start_level <= mask_end_level < self.num_levels:
            raise ValueError(
                f"MODEL.SOLO.MASK_FEAT.START_LEVEL={mask_start_level} and END_LEVEL="
                f"{mask_end_level} must satisfy 0 <= START_LEVEL <= END_LEVEL < "
                f"{self.num_levels} (the head reads {self.num_levels} levels)"
            )
        self.mask_feat_channels = mask_feat_channels
        self.mask_start_level = mask_start_level
        self.mask_end_level = mask_end_level
        self.mask_dcn_type = mask_dcn_type
        self.dcn_apply_to_all_conv = dcn_apply_to_all_conv
        self.dynamic_conv_size = dynamic_conv_size
        self.mask_out_channels = mask_out_channels
        self.kernel_out_channels = mask_out_channels * dynamic_conv_size**2
        # Unified mask features: one resolution, target masks downscaled by this on every level.
        self.mask_stride = mask_stride
        if input_shape is not None:
            self.build(input_shape)

    def adapt_to_input(self, input_shape: List[ShapeSpec], names) -> None:
        """The mask features are made at the finest level's resolution: its stride must be
        ``mask_stride``."""
        feature_stride = input_shape[0].stride
        if feature_stride is not None and feature_stride != self.mask_stride:
            first = describe_levels(input_shape[:1], names[:1] if names else None)
            raise ValueError(
                f"MODEL.SOLO.MASK_FEAT.MASK_STRIDE is {self.mask_stride} (mask_stride) but the "
                f"mask features are built at the stride of the first level read, {first}; "
                f"set it to {feature_stride}"
            )

    def build_layers(self) -> None:
        self.kernel_convs = conv_tower(
            self.in_channels + 2, self.feat_channels, self.stacked_convs, self.norm,
            self.dcn_type, self._dcn_layers(),
        )
        self._build_cls_branch()
        self.conv_kernel = nn.Conv2d(self.feat_channels, self.kernel_out_channels, 3, padding=1)
        self.mask_feature_head = MaskFeatModule(
            self.in_channels, self.mask_feat_channels, self.mask_start_level,
            self.mask_end_level, self.mask_out_channels, self.norm, self.mask_dcn_type,
        )
        init_normal(self, [self.conv_cls], self.prior_prob)

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[List[ShapeSpec]]):
        ret = super().from_config(cfg, input_shape)
        m = cfg.MODEL.SOLO.MASK_FEAT
        ret.update(
            mask_feat_channels=m.FEAT_CHANNELS,
            mask_start_level=m.START_LEVEL,
            mask_end_level=m.END_LEVEL,
            mask_out_channels=m.OUT_CHANNELS,
            mask_stride=m.MASK_STRIDE,
            mask_dcn_type=m.DCN_TYPE,
            dynamic_conv_size=cfg.MODEL.SOLO.DYNAMIC_CONV_SIZE,
            dcn_apply_to_all_conv=cfg.MODEL.SOLO.DCN_APPLY_TO_ALL_CONV,
        )
        return ret

    def _dcn_layers(self) -> List[int]:
        if not self.dcn_type:
            return []
        if self.dcn_apply_to_all_conv:
            return list(range(self.stacked_convs))
        return [self.stacked_convs - 1]

    def target_options(self) -> dict:
        """Extra arguments of ``targets.assign_targets_single`` for this head: every level's
        masks are at the mask-feature stride, and (as mmdet's SOLOv2) a cell covered by several
        instances' centre regions keeps one mask target per instance."""
        if self.dynamic_conv_size != 1:
            # The dynamic convolution is unpadded, as mmdet's: its masks are smaller than
            # their targets (mmdet 3.3.0 cannot train this setting either).
            raise ValueError(
                f"MODEL.SOLO.DYNAMIC_CONV_SIZE {self.dynamic_conv_size} gives masks "
                f"{self.dynamic_conv_size - 1} pixels smaller than their targets; training "
                "needs 1 (inference works with any odd size, as in mmdet)"
            )
        return {"mask_strides": [self.mask_stride] * self.num_levels, "keep_overlaps": True}

    def shared_mask_features(self, features: List[Tensor]) -> Tensor:
        """The unified mask features (N, mask_out_channels, H_0, W_0), shared by all levels."""
        return self.mask_feature_head(features)

    def level_mask_inputs(self, x: Tensor, level: int, shared: Optional[Tensor]):
        """``(kernel_feats (N, feat_channels, S, S), mask_feats)``: the kernel tower's output
        (the input of the 3x3 ``conv_kernel``) and the shared mask features."""
        # CoordConv channels are made at the level's resolution and resized with it.
        xc = torch.cat([x, coord_features(x)], 1)
        return self.grid_tower(self.kernel_convs, xc, level), shared

    def cell_kernels(self, kernel_feats: Tensor, cells: Tensor) -> Tensor:
        """``conv_kernel`` evaluated at the given cells only.

        Args:
            kernel_feats: (F, S, S) kernel features of one image.
            cells: (K,) row-major cell indices.
        Returns:
            (K, kernel_out_channels) dynamic kernels.
        """
        s = kernel_feats.shape[-1]
        padded = F.pad(kernel_feats, (1, 1, 1, 1))
        offsets = torch.arange(3, device=cells.device)
        rows = torch.div(cells, s, rounding_mode="floor")[:, None] + offsets
        cols = (cells % s)[:, None] + offsets
        patches = padded[:, rows[:, :, None], cols[:, None, :]]  # (F, K, 3, 3)
        patches = patches.transpose(0, 1).flatten(1)  # (K, F*9), the weight's (in, kh, kw) order
        return torch.addmm(self.conv_kernel.bias, patches, self.conv_kernel.weight.flatten(1).t())

    def _dynamic_conv(self, mask_feats: Tensor, kernels: Tensor) -> Tensor:
        """(E, h, w) features, (K, E*k*k) kernels -> (K, h-k+1, w-k+1) logits: mmdet's
        unpadded dynamic convolution written as k*k matmuls, which trace into ONNX (a
        convolution whose weights are computed in the graph does not) and, for the usual
        k = 1, is one (K, E) x (E, h*w) product."""
        k = self.dynamic_conv_size
        e, h, w = mask_feats.shape
        oh, ow = h - k + 1, w - k + 1
        weights = kernels.view(kernels.shape[0], e, k, k)
        out = None
        for dy in range(k):
            for dx in range(k):
                window = mask_feats[:, dy : dy + oh, dx : dx + ow].reshape(e, -1)
                term = weights[:, :, dy, dx] @ window
                out = term if out is None else out + term
        return out.view(kernels.shape[0], oh, ow)

    def image_mask_probs(
        self,
        mask_inputs: List[Tuple[Tensor, Tensor]],
        level: int,
        image: int,
        cells: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) cell indices of one image -> (K, h, w) sigmoid masks of only those cells' kernels."""
        kernel_feats, mask_feats = mask_inputs[level]
        kernels = self.cell_kernels(kernel_feats[image], cells)
        return resize_probs(self._dynamic_conv(mask_feats[image], kernels).sigmoid(), out_size)

    def level_mask_size(self, mask_inputs, level: int) -> Tuple[int, int]:
        """(h, w) of the masks: the mask features' size on every level."""
        h, w = mask_inputs[level][1].shape[-2:]
        return (h - self.dynamic_conv_size + 1, w - self.dynamic_conv_size + 1)
