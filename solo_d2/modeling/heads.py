"""SOLO heads: layers and forward only. Targets, losses and post-processing live elsewhere.

Every head shares one interface:

* ``forward(features)`` -> ``(cls_logits, mask_inputs)``: ``cls_logits[l]`` is
  (N, C, S_l, S_l); ``mask_inputs[l]`` is whatever the head needs to produce the masks of
  level ``l`` later (its mask features, *not* the S^2 projected maps).
* ``mask_probs(mask_inputs, level, batch_idx, cell_idx, out_size)`` -> (K, h, w) mask
  probabilities of only the K requested grid cells (``cell_idx`` in [0, S_l^2), row-major,
  ``batch_idx`` the image of each). This is the lazy projection of design.md: the 1x1 (SOLO)
  or 3x3 (Decoupled SOLO) projections are linear, so projecting only the cells that a loss or
  the post-processing reads gives the same numbers as projecting all of them. With
  ``out_size`` the probabilities are bilinearly resized after the sigmoid, as mmdet does at
  inference; without it they stay at the level's resolution (training).
"""
import logging
import math
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import (
    DeformConv,
    conv_tower,
    coord_features,
    run_tower,
    selective_checkpoint_available,
)

logger = logging.getLogger(__name__)

__all__ = [
    "SOLO_HEAD_REGISTRY",
    "build_solo_head",
    "SOLOHead",
    "DecoupledSOLOHead",
    "DecoupledSOLOLightHead",
]

SOLO_HEAD_REGISTRY = Registry("SOLO_HEAD")
SOLO_HEAD_REGISTRY.__doc__ = "Registry of SOLO-family heads, chosen by MODEL.SOLO.HEAD_NAME."


def build_solo_head(cfg, input_shape: List[ShapeSpec]) -> nn.Module:
    """Build the head named by ``cfg.MODEL.SOLO.HEAD_NAME``; unknown names list the valid ones."""
    name = cfg.MODEL.SOLO.HEAD_NAME
    if name not in SOLO_HEAD_REGISTRY:
        valid = ", ".join(sorted(k for k, _ in SOLO_HEAD_REGISTRY))
        raise ValueError(f"Unknown MODEL.SOLO.HEAD_NAME {name!r}; valid names: {valid}")
    return SOLO_HEAD_REGISTRY.get(name)(cfg, input_shape)


def _group_by_image(batch_idx: Tensor) -> List[Tuple[int, Tensor]]:
    """[(image, positions of that image's rows in batch_idx)] for each image present."""
    return [(int(b), (batch_idx == b).nonzero().flatten()) for b in torch.unique(batch_idx)]


def _resize(probs: Tensor, out_size: Optional[Sequence[int]]) -> Tensor:
    """(K, h, w) -> (K, *out_size), bilinear; unchanged when out_size is None or equal."""
    if out_size is None or tuple(probs.shape[-2:]) == tuple(out_size):
        return probs
    return F.interpolate(probs[None], size=tuple(out_size), mode="bilinear")[0]


def resize_level_features(features: List[Tensor]) -> List[Tensor]:
    """SOLO's level resizing: the finest level is halved, the coarsest matched to the one above.

    With p2..p6 this gives strides 8, 8, 16, 32, 32 (mmdet's ``strides``).
    """
    out = list(features)
    out[0] = F.interpolate(features[0], scale_factor=0.5, mode="bilinear")
    out[-1] = F.interpolate(features[-1], size=features[-2].shape[-2:], mode="bilinear")
    return out


def _init_normal(module: nn.Module, prior_bias_modules: Sequence[nn.Module], prior_prob: float):
    """mmdet's init: every conv ~ N(0, 0.01) with bias 0, deformable offsets 0, and the given
    convs' bias -log((1 - p) / p)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, DeformConv)):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in module.modules():
        if isinstance(m, DeformConv):
            nn.init.zeros_(m.conv_offset.weight)
            nn.init.zeros_(m.conv_offset.bias)
    bias_value = -math.log((1 - prior_prob) / prior_prob)
    for conv in prior_bias_modules:
        nn.init.constant_(conv.bias, bias_value)


class _SOLOHeadBase(nn.Module):
    """Settings and the category branch common to all SOLO heads."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        feat_channels: int = 256,
        stacked_convs: int = 7,
        num_grids: Sequence[int] = (40, 36, 24, 16, 12),
        cls_down_index: int = 0,
        norm: str = "GN",
        dcn_type: str = "",
        prior_prob: float = 0.01,
        recompute_norm_act: bool = True,
    ):
        """``recompute_norm_act``: see :func:`~solo_d2.modeling.layers.run_tower` (mask
        towers only; a training-memory saving with the same results)."""
        super().__init__()
        if len({s.channels for s in input_shape}) != 1:
            raise ValueError(f"SOLO heads need equal channels on all levels, got {input_shape}")
        if len(num_grids) != len(input_shape):
            raise ValueError(
                f"MODEL.SOLO.NUM_GRIDS has {len(num_grids)} entries but the head reads "
                f"{len(input_shape)} feature levels (MODEL.SOLO.IN_FEATURES)"
            )
        if not 0 <= cls_down_index < stacked_convs:
            raise ValueError(
                f"MODEL.SOLO.CLS_DOWN_INDEX={cls_down_index} must be in [0, {stacked_convs})"
            )
        self.num_classes = num_classes
        self.in_channels = input_shape[0].channels
        self.feat_channels = feat_channels
        self.stacked_convs = stacked_convs
        self.num_grids = list(num_grids)
        self.num_levels = len(num_grids)
        self.cls_down_index = cls_down_index
        self.norm = norm
        self.dcn_type = dcn_type
        self.prior_prob = prior_prob
        if recompute_norm_act and not selective_checkpoint_available():
            logger.warning(
                "MODEL.SOLO.RECOMPUTE_NORM_ACT needs torch >= 2.4 (selective activation "
                f"checkpointing); torch {torch.__version__} trains without it (more memory)."
            )
            recompute_norm_act = False
        self.recompute_norm_act = recompute_norm_act

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        c = cfg.MODEL.SOLO
        return {
            "input_shape": input_shape,
            "num_classes": c.NUM_CLASSES,
            "feat_channels": c.FEAT_CHANNELS,
            "stacked_convs": c.STACKED_CONVS,
            "num_grids": c.NUM_GRIDS,
            "cls_down_index": c.CLS_DOWN_INDEX,
            "norm": c.NORM,
            "dcn_type": c.DCN_TYPE,
            "prior_prob": c.PRIOR_PROB,
            "recompute_norm_act": c.RECOMPUTE_NORM_ACT,
        }

    def _dcn_layers(self) -> List[int]:
        """Indices of the stacked convs that are deformable (none unless a head allows it)."""
        if self.dcn_type:
            raise ValueError(
                f"{type(self).__name__} has no deformable convs; set MODEL.SOLO.DCN_TYPE ''"
            )
        return []

    def _build_cls_branch(self) -> None:
        self.cls_convs = conv_tower(
            self.in_channels, self.feat_channels, self.stacked_convs, self.norm,
            self.dcn_type, self._dcn_layers(),
        )
        self.conv_cls = nn.Conv2d(self.feat_channels, self.num_classes, 3, padding=1)

    def cls_forward(self, x: Tensor, level: int) -> Tensor:
        """(N, C_in, H, W) -> (N, num_classes, S, S) category logits."""
        for j, layer in enumerate(self.cls_convs):
            if j == self.cls_down_index:
                x = F.interpolate(x, size=self.num_grids[level], mode="bilinear")
            x = layer(x)
        return self.conv_cls(x)

    def mask_branch_parameters(self) -> List[nn.Parameter]:
        """Every parameter but the category branch's: only the mask loss reaches them, and
        lazy projection leaves them out of the graph for levels (or whole batches) without
        positive cells (the meta-architecture touches them with weight 0)."""
        category = {id(p) for m in (self.cls_convs, self.conv_cls) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in category]


@SOLO_HEAD_REGISTRY.register()
class SOLOHead(_SOLOHeadBase):
    """Vanilla SOLO: one mask tower (CoordConv input) and a 1x1 projection to S^2 maps per level."""

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mask_convs = conv_tower(
            self.in_channels + 2, self.feat_channels, self.stacked_convs, self.norm
        )
        self.conv_mask_list = nn.ModuleList(
            [nn.Conv2d(self.feat_channels, s * s, 1) for s in self.num_grids]
        )
        self._build_cls_branch()
        _init_normal(self, [self.conv_cls, *self.conv_mask_list], self.prior_prob)

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """
        Args:
            features: per level (N, C_in, H_l, W_l), finest first.
        Returns:
            cls_logits: per level (N, num_classes, S_l, S_l).
            mask_feats: per level (N, feat_channels, H'_l, W'_l): the mask tower's output,
                before the x2 upsampling that precedes the (never materialised) S^2
                projection. See ``mask_probs`` for why the upsampling is deferred.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature levels, got {len(features)}")
        feats = resize_level_features(features)
        cls_logits, mask_feats = [], []
        for level, x in enumerate(feats):
            x_coord = torch.cat([x, coord_features(x)], 1)
            mask_feats.append(run_tower(self.mask_convs, x_coord, self.recompute_norm_act))
            cls_logits.append(self.cls_forward(x, level))
        return cls_logits, mask_feats

    def mask_probs(
        self,
        mask_inputs: List[Tensor],
        level: int,
        batch_idx: Tensor,
        cell_idx: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) image and cell indices -> (K, h, w) sigmoid mask probabilities of those cells.

        The reference upsamples the C-channel features x2 and then projects them. A 1x1 conv
        and bilinear resizing are both linear and bilinear weights sum to 1, so projecting
        first (a (K, C) x (C, h*w) matmul at the features' resolution) and upsampling the K
        maps gives the same logits to float rounding, for a quarter of the projection's work.
        """
        feats = mask_inputs[level]
        conv = self.conv_mask_list[level]
        h, w = feats.shape[-2:]
        out = feats.new_empty((len(cell_idx), *self.level_mask_size(mask_inputs, level)))
        for b, rows in _group_by_image(batch_idx):
            cells = cell_idx[rows]
            logits = torch.addmm(
                conv.bias[cells, None], conv.weight[cells].flatten(1), feats[b].flatten(1)
            )
            out[rows] = F.interpolate(logits.view(1, -1, h, w), scale_factor=2, mode="bilinear")[0]
        return _resize(out.sigmoid(), out_size)

    def level_mask_size(self, mask_inputs: List[Tensor], level: int) -> Tuple[int, int]:
        """(h, w) of level ``level``'s mask predictions: twice the mask features' size."""
        h, w = mask_inputs[level].shape[-2:]
        return 2 * h, 2 * w

    def full_mask_logits(self, mask_inputs: List[Tensor], level: int) -> Tensor:
        """All S^2 maps of a level, (N, S^2, h, w), in mmdet's order (upsample, then project).
        Tests and parity only."""
        x = F.interpolate(mask_inputs[level], scale_factor=2, mode="bilinear")
        return self.conv_mask_list[level](x)


@SOLO_HEAD_REGISTRY.register()
class DecoupledSOLOHead(_SOLOHeadBase):
    """Decoupled SOLO: X and Y towers (one CoordConv channel each), S maps per direction.

    The mask of cell (i, j) is sigmoid(Y_i) * sigmoid(X_j).
    """

    @configurable
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_mask_branch()
        self._build_cls_branch()
        _init_normal(
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

    def _mask_towers(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        coords = coord_features(x)
        rc = self.recompute_norm_act
        fx = run_tower(self.mask_convs_x, torch.cat([x, coords[:, 0:1]], 1), rc)
        fy = run_tower(self.mask_convs_y, torch.cat([x, coords[:, 1:2]], 1), rc)
        return fx, fy

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tuple[Tensor, Tensor]]]:
        """
        Returns:
            cls_logits: per level (N, num_classes, S_l, S_l).
            mask_feats: per level a pair (X features, Y features), each
                (N, feat_channels, 2*H'_l, 2*W'_l), the inputs of the X/Y projections.
        """
        if len(features) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature levels, got {len(features)}")
        feats = resize_level_features(features)
        cls_logits, mask_feats = [], []
        for level, x in enumerate(feats):
            fx, fy = self._mask_towers(x)
            mask_feats.append(
                (
                    F.interpolate(fx, scale_factor=2, mode="bilinear"),
                    F.interpolate(fy, scale_factor=2, mode="bilinear"),
                )
            )
            cls_logits.append(self.cls_forward(x, level))
        return cls_logits, mask_feats

    @staticmethod
    def _rows(feat: Tensor, conv: nn.Conv2d, rows: Tensor) -> Tensor:
        """Sigmoid of the projection rows ``rows`` of one image: (1, C, h, w) -> (R, h, w)."""
        return F.conv2d(feat, conv.weight[rows], conv.bias[rows], padding=1)[0].sigmoid()

    def mask_probs(
        self,
        mask_inputs: List[Tuple[Tensor, Tensor]],
        level: int,
        batch_idx: Tensor,
        cell_idx: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) image and cell indices -> (K, h, w) probabilities sigmoid(Y_i) * sigmoid(X_j)."""
        fx, fy = mask_inputs[level]
        s = self.num_grids[level]
        size = out_size if out_size is not None else fx.shape[-2:]
        out = fx.new_empty((len(cell_idx), *size))
        for b, rows in _group_by_image(batch_idx):
            ys, y_inv = torch.unique(torch.div(cell_idx[rows], s, rounding_mode="floor"),
                                     return_inverse=True)
            xs, x_inv = torch.unique(cell_idx[rows] % s, return_inverse=True)
            px = _resize(self._rows(fx[b : b + 1], self.conv_mask_list_x[level], xs), out_size)
            py = _resize(self._rows(fy[b : b + 1], self.conv_mask_list_y[level], ys), out_size)
            out[rows] = px[x_inv] * py[y_inv]
        return out

    def level_mask_size(self, mask_inputs, level: int) -> Tuple[int, int]:
        """(h, w) of level ``level``'s mask predictions."""
        return tuple(mask_inputs[level][0].shape[-2:])

    def full_mask_logits(self, mask_inputs, level: int) -> Tuple[Tensor, Tensor]:
        """All X and Y maps of a level, each (N, S, h, w): what mmdet computes. Tests only."""
        fx, fy = mask_inputs[level]
        return self.conv_mask_list_x[level](fx), self.conv_mask_list_y[level](fy)


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

    def _mask_towers(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x_coord = torch.cat([x, coord_features(x)], 1)
        f = run_tower(self.mask_convs, x_coord, self.recompute_norm_act)
        return f, f

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tuple[Tensor, Tensor]]]:
        # Same as the decoupled head but X and Y read one tensor: upsample it once.
        if len(features) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature levels, got {len(features)}")
        feats = resize_level_features(features)
        cls_logits, mask_feats = [], []
        for level, x in enumerate(feats):
            f = F.interpolate(self._mask_towers(x)[0], scale_factor=2, mode="bilinear")
            mask_feats.append((f, f))
            cls_logits.append(self.cls_forward(x, level))
        return cls_logits, mask_feats
