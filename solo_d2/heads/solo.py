"""Vanilla SOLO's head (Wang et al., ECCV 2020): one CoordConv mask tower and a 1x1
projection to S^2 mask maps per level, never materialised (semantics: mmdet 3.3.0's
``SOLOHead``)."""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.blocks import conv_tower, coord_features, run_tower
from .base import SOLO_HEAD_REGISTRY, SOLOHeadBase, init_normal, resize_probs

__all__ = ["SOLOHead"]


@SOLO_HEAD_REGISTRY.register()
class SOLOHead(SOLOHeadBase):
    """Vanilla SOLO: one mask tower (CoordConv input) and a 1x1 projection to S^2 maps per level.

    ``mask_inputs[l]`` is the mask tower's output (N, feat_channels, H'_l, W'_l), before the x2
    upsampling that precedes the projection; see :meth:`mask_probs` for why the upsampling is
    deferred.
    """

    def build_layers(self) -> None:
        self.mask_convs = conv_tower(
            self.in_channels + 2, self.feat_channels, self.stacked_convs, self.norm
        )
        self.conv_mask_list = nn.ModuleList(
            [nn.Conv2d(self.feat_channels, s * s, 1) for s in self.num_grids]
        )
        self._build_cls_branch()
        init_normal(self, [self.conv_cls, *self.conv_mask_list], self.prior_prob)

    def level_mask_inputs(self, x: Tensor, level: int, shared: Optional[Tensor]) -> Tensor:
        x_coord = torch.cat([x, coord_features(x)], 1)
        return run_tower(self.mask_convs, x_coord, self.recompute_norm_act)

    def image_mask_probs(
        self,
        mask_inputs: List[Tensor],
        level: int,
        image: int,
        cells: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) cell indices of one image -> (K, h, w) sigmoid mask probabilities of those cells.

        mmdet 3.3.0 upsamples the C-channel features x2 and then projects them. A 1x1 conv and
        bilinear resizing are both linear and bilinear weights sum to 1, so projecting first
        (a (K, C) x (C, h*w) matmul at the features' resolution) and upsampling the K maps
        gives the same logits to float rounding, for a quarter of the projection's work.
        """
        feats = mask_inputs[level][image]
        conv = self.conv_mask_list[level]
        h, w = feats.shape[-2:]
        logits = torch.addmm(conv.bias[cells, None], conv.weight[cells].flatten(1), feats.flatten(1))
        up = F.interpolate(logits.view(1, cells.shape[0], h, w), scale_factor=2, mode="bilinear")
        return resize_probs(up[0].sigmoid(), out_size)

    def level_mask_size(self, mask_inputs: List[Tensor], level: int) -> Tuple[int, int]:
        """(h, w) of level ``level``'s mask predictions: twice the mask features' size."""
        h, w = mask_inputs[level].shape[-2:]
        return 2 * h, 2 * w
