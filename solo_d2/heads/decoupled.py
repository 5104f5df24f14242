"""Decoupled SOLO's heads (Wang et al., ECCV 2020): the mask of cell (i, j) is
sigmoid(Y_i) * sigmoid(X_j), with S "X" and S "Y" maps per level instead of S^2 (semantics:
mmdet 3.3.0's ``DecoupledSOLOHead`` and ``DecoupledSOLOLightHead``)."""
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.blocks import conv_tower, coord_features, run_tower
from .base import SOLO_HEAD_REGISTRY, SOLOHeadBase, init_normal, resize_probs

__all__ = ["DecoupledSOLOHead", "DecoupledSOLOLightHead"]


def _upsample2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear")


@SOLO_HEAD_REGISTRY.register()
class DecoupledSOLOHead(SOLOHeadBase):
    """Decoupled SOLO: X and Y towers (one CoordConv channel each), S maps per direction.

    ``mask_inputs[l]`` is the pair (X features, Y features), each
    (N, feat_channels, 2*H'_l, 2*W'_l): the inputs of the 3x3 X/Y projections.
    """

    def build_layers(self) -> None:
        self._build_mask_branch()
        self._build_cls_branch()
        init_normal(
            self,
            [self.conv_cls, *self.conv_mask_list_x, *self.conv_mask_list_y],
            self.prior_prob,
        )

    def _build_mask_branch(self) -> None:
        self.mask_convs_x = conv_tower(
            self.in_channels + 1, self.feat_channels, self.stacked_convs, self.norm
        )
        self.mask_convs_y = conv_tower(
            self.in_channels + 1, self.feat_channels, self.stacked_convs, self.norm
        )
        self._build_projections()

    def _build_projections(self) -> None:
        self.conv_mask_list_x = nn.ModuleList(
            [nn.Conv2d(self.feat_channels, s, 3, padding=1) for s in self.num_grids]
        )
        self.conv_mask_list_y = nn.ModuleList(
            [nn.Conv2d(self.feat_channels, s, 3, padding=1) for s in self.num_grids]
        )

    def level_mask_inputs(
        self, x: Tensor, level: int, shared: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor]:
        coords = coord_features(x)
        rc = self.recompute_norm_act
        fx = run_tower(self.mask_convs_x, torch.cat([x, coords[:, 0:1]], 1), rc)
        fy = run_tower(self.mask_convs_y, torch.cat([x, coords[:, 1:2]], 1), rc)
        return _upsample2(fx), _upsample2(fy)

    @staticmethod
    def _rows(feat: Tensor, conv: nn.Conv2d, rows: Tensor) -> Tensor:
        """Sigmoid of the projection rows ``rows`` of one image: (1, C, h, w) -> (R, h, w)."""
        return F.conv2d(feat, conv.weight[rows], conv.bias[rows], padding=1)[0].sigmoid()

    def image_mask_probs(
        self,
        mask_inputs: List[Tuple[Tensor, Tensor]],
        level: int,
        image: int,
        cells: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) cell indices of one image -> (K, h, w) probabilities sigmoid(Y_i) * sigmoid(X_j),
        from the X and Y rows of only the requested cells."""
        fx, fy = mask_inputs[level]
        s = self.num_grids[level]
        ys, y_inv = torch.unique(torch.div(cells, s, rounding_mode="floor"), return_inverse=True)
        xs, x_inv = torch.unique(cells % s, return_inverse=True)
        px = resize_probs(self._rows(fx[image : image + 1], self.conv_mask_list_x[level], xs), out_size)
        py = resize_probs(self._rows(fy[image : image + 1], self.conv_mask_list_y[level], ys), out_size)
        return px[x_inv] * py[y_inv]

    def level_mask_size(self, mask_inputs, level: int) -> Tuple[int, int]:
        """(h, w) of level ``level``'s mask predictions."""
        return tuple(mask_inputs[level][0].shape[-2:])


@SOLO_HEAD_REGISTRY.register()
class DecoupledSOLOLightHead(DecoupledSOLOHead):
    """Decoupled SOLO light: one shared mask tower (both CoordConv channels) feeding X and Y.

    With MODEL.SOLO.DCN_TYPE set, the last conv of both towers is deformable (mmdet dcn_cfg).
    """

    def _dcn_layers(self) -> List[int]:
        return [self.stacked_convs - 1] if self.dcn_type else []

    def _build_mask_branch(self) -> None:
        self.mask_convs = conv_tower(
            self.in_channels + 2, self.feat_channels, self.stacked_convs, self.norm,
            self.dcn_type, self._dcn_layers(),
        )
        self._build_projections()

    def level_mask_inputs(
        self, x: Tensor, level: int, shared: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor]:
        # X and Y read one tensor: upsample it once
        x_coord = torch.cat([x, coord_features(x)], 1)
        f = _upsample2(run_tower(self.mask_convs, x_coord, self.recompute_norm_act))
        return f, f
