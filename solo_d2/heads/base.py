"""The contract every SOLO-family head keeps, and the skeleton they share.

A head turns FPN features into what the meta-architecture (``meta_arch.py``) needs, and
nothing more: it assigns no targets, computes no loss and does no post-processing.

* :meth:`SOLOHeadBase.forward` (owned here): level resizing (strides 8, 8, 16, 32, 32 from
  p2..p6), then per level the category branch and the head's mask inputs. It returns
  ``(cls_logits, mask_inputs)``: ``cls_logits[l]`` is (N, C, S_l, S_l); ``mask_inputs[l]`` is
  whatever the head needs to produce level ``l``'s masks later (its mask features, never the
  S^2 projected maps).
* :meth:`mask_probs`: (K, h, w) mask probabilities of only the K requested grid cells of a
  batch, from each head's :meth:`image_mask_probs` (one image; traced as is for ONNX
  export). The projection is lazy: the projections are linear, so projecting
  only the cells that a loss or the post-processing reads gives the same numbers as
  projecting all of them.
* :meth:`level_mask_size` (each head): (h, w) of level ``l``'s mask predictions.
* :attr:`mask_stride`: how many times the level-0 masks are smaller than the padded image.
* :meth:`target_options`: extra arguments of ``targets.assign_targets_single`` (default none).
* :meth:`mask_branch_parameters`: the parameters only the mask loss reaches.

Subclasses build their layers and implement :meth:`level_mask_inputs`, :meth:`image_mask_probs`
and :meth:`level_mask_size`, as Detectron2's dense detectors override only what differs.
"""
import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import Tensor, nn
from torch.nn import functional as F

from ..layers.blocks import DeformConv, conv_tower, selective_checkpoint_available

__all__ = [
    "SOLO_HEAD_REGISTRY",
    "SOLOHeadBase",
    "build_solo_head",
    "describe_levels",
    "resize_level_features",
]

logger = logging.getLogger(__name__)

SOLO_HEAD_REGISTRY = Registry("SOLO_HEAD")
SOLO_HEAD_REGISTRY.__doc__ = "Registry of SOLO-family heads, chosen by MODEL.SOLO.HEAD_NAME."


def build_solo_head(cfg, input_shape: Optional[List[ShapeSpec]]) -> nn.Module:
    """Build the head named by ``cfg.MODEL.SOLO.HEAD_NAME`` (its layers only with an
    ``input_shape``, see :meth:`SOLOHeadBase.build`); unknown names list the valid ones."""
    name = cfg.MODEL.SOLO.HEAD_NAME
    if name not in SOLO_HEAD_REGISTRY:
        valid = ", ".join(sorted(k for k, _ in SOLO_HEAD_REGISTRY))
        raise ValueError(f"Unknown MODEL.SOLO.HEAD_NAME {name!r}; valid names: {valid}")
    return SOLO_HEAD_REGISTRY.get(name)(cfg, input_shape)


def group_by_image(batch_idx: Tensor) -> List[Tuple[int, Tensor]]:
    """[(image, positions of that image's rows in batch_idx)] for each image present."""
    return [(int(b), (batch_idx == b).nonzero().flatten()) for b in torch.unique(batch_idx)]


def resize_probs(probs: Tensor, out_size: Optional[Sequence[int]]) -> Tensor:
    """(K, h, w) -> (K, *out_size), bilinear; unchanged when out_size is None or equal.

    Whether the sizes are equal depends on the level only (inputs are padded to the
    backbone's size divisibility), so an ONNX trace may keep the decision made on its sample.
    """
    if out_size is None or tuple(probs.shape[-2:]) == tuple(out_size):
        return probs
    return F.interpolate(probs[None], size=tuple(out_size), mode="bilinear")[0]


def resize_level_features(features: List[Tensor]) -> List[Tensor]:
    """SOLO's level resizing: the finest level is halved, the coarsest matched to the one above.

    With p2..p6 this gives strides 8, 8, 16, 32, 32 (mmdet 3.3.0's ``strides``).
    """
    out = list(features)
    out[0] = F.interpolate(features[0], scale_factor=0.5, mode="bilinear")
    out[-1] = F.interpolate(features[-1], size=features[-2].shape[-2:], mode="bilinear")
    return out


def init_normal(module: nn.Module, prior_bias_modules: Sequence[nn.Module], prior_prob: float):
    """mmdet 3.3.0's head init: every conv ~ N(0, 0.01) with bias 0, deformable offsets 0, and
    the given convs' bias -log((1 - p) / p)."""
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


def describe_levels(shapes: Sequence[ShapeSpec], names: Optional[Sequence[str]] = None) -> str:
    """'p2 (256 channels, stride 4), p3 (...)': levels as error messages name them."""
    names = list(names) if names is not None else [f"level {i}" for i in range(len(shapes))]
    parts = []
    for name, s in zip(names, shapes):
        stride = f", stride {s.stride}" if s.stride is not None else ""
        parts.append(f"{name} ({s.channels} channels{stride})")
    return ", ".join(parts)


class SOLOHeadBase(nn.Module):
    """Settings, the category branch and the template ``forward`` of all SOLO heads.

    A head is built for the feature levels it reads (``input_shape``). Without
    ``input_shape`` its layers wait for :meth:`build`: the meta-architecture
    (:class:`~solo_d2.modeling.SOLO`) builds them for its backbone's features, so that a
    LazyConfig's ``L(SOLOHead)(num_classes=80, ...)`` takes the channels and the number of
    levels of whatever backbone it sits on.
    """

    #: how many times the level-0 mask predictions are smaller than the padded image
    mask_stride: int = 4

    @configurable
    def __init__(
        self,
        *,
        input_shape: Optional[List[ShapeSpec]] = None,
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
        """
        Args:
            input_shape: per level read, finest first, the features' shape; None: built
                later by :meth:`build`.
            num_grids: grid size S of each level (one entry per level).
            recompute_norm_act: see :func:`~solo_d2.layers.blocks.run_tower` (mask towers
                only; a training-memory saving with the same results).
        """
        super().__init__()
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes is {num_classes!r}; expected an integer >= 1")
        if not (isinstance(stacked_convs, int) and stacked_convs >= 1):
            raise ValueError(f"stacked_convs is {stacked_convs!r}; expected an integer >= 1")
        if not 0 <= cls_down_index < stacked_convs:
            raise ValueError(
                f"MODEL.SOLO.CLS_DOWN_INDEX={cls_down_index} must be in [0, {stacked_convs})"
            )
        if not num_grids or not all(isinstance(s, int) and s >= 1 for s in num_grids):
            raise ValueError(f"num_grids is {list(num_grids)!r}; expected integers >= 1, one "
                             "per level")
        self.num_classes = num_classes
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
        self.input_shape: Optional[List[ShapeSpec]] = None
        self.in_channels: Optional[int] = None
        if input_shape is not None:
            self.build(input_shape)

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[List[ShapeSpec]]) -> Dict[str, Any]:
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

    # ------------------------------------------------------------------ building
    @property
    def is_built(self) -> bool:
        """Whether the layers exist (``input_shape`` given, or :meth:`build` called)."""
        return self.input_shape is not None

    def build(
        self, input_shape: Sequence[ShapeSpec], names: Optional[Sequence[str]] = None
    ) -> "SOLOHeadBase":
        """Build the layers for features of these shapes (one per level, finest first); the
        levels' ``names`` (e.g. "p2") only make error messages clearer. Returns the head.

        Raises:
            ValueError: naming the levels, when their number differs from ``num_grids``'s or
                their channels differ (one conv tower reads every level).
        """
        if self.is_built:
            raise RuntimeError(f"{type(self).__name__} is already built for {self.input_shape}")
        input_shape = list(input_shape)
        if len(input_shape) != self.num_levels:
            raise ValueError(
                f"{type(self).__name__} has {self.num_levels} grid levels (num_grids "
                f"{self.num_grids}, MODEL.SOLO.NUM_GRIDS) but reads {len(input_shape)} feature "
                f"levels: {describe_levels(input_shape, names)}; give one grid per level"
            )
        if len({s.channels for s in input_shape}) != 1:
            raise ValueError(
                "SOLO heads read every level with the same convolutions, so the levels need "
                f"equal channels; got {describe_levels(input_shape, names)}"
            )
        self.adapt_to_input(input_shape, names)
        self.input_shape = input_shape
        self.in_channels = input_shape[0].channels
        self.build_layers()
        return self

    def adapt_to_input(
        self, input_shape: List[ShapeSpec], names: Optional[Sequence[str]]
    ) -> None:
        """Head-specific checks and settings from the levels, before the layers are built.

        SOLO and Decoupled SOLO predict level 0's masks at the finest level's stride (its
        features are halved, and the mask tower's output is upsampled x2): that stride,
        when known, is :attr:`mask_stride`.
        """
        if input_shape[0].stride is not None:
            self.mask_stride = int(input_shape[0].stride)

    def build_layers(self) -> None:
        """Create the layers for ``self.in_channels`` input channels and initialise them."""
        raise NotImplementedError

    # ---------------------------------------------------------------- category branch
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

    def grid_tower(self, tower: nn.Sequential, x: Tensor, level: int) -> Tensor:
        """Run ``tower`` on ``x``, resizing to the level's S x S grid before the conv at
        MODEL.SOLO.CLS_DOWN_INDEX: (N, C, H, W) -> (N, feat_channels, S, S)."""
        for j, layer in enumerate(tower):
            if j == self.cls_down_index:
                x = F.interpolate(x, size=self.num_grids[level], mode="bilinear")
            x = layer(x)
        return x

    def cls_forward(self, x: Tensor, level: int) -> Tensor:
        """(N, C_in, H, W) -> (N, num_classes, S, S) category logits."""
        return self.conv_cls(self.grid_tower(self.cls_convs, x, level))

    # ------------------------------------------------------------------ template
    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Any]]:
        """
        Args:
            features: per level (N, C_in, H_l, W_l), finest first.
        Returns:
            cls_logits: per level (N, num_classes, S_l, S_l).
            mask_inputs: per level what :meth:`mask_probs` reads (see the subclass).
        """
        if not self.is_built:
            raise RuntimeError(
                f"{type(self).__name__} was made without input_shape and not built: call "
                "build(input_shape) or give it to SOLO, which builds it for its backbone"
            )
        if len(features) != self.num_levels:
            raise ValueError(f"expected {self.num_levels} feature levels, got {len(features)}")
        shared = self.shared_mask_features(features)
        cls_logits, mask_inputs = [], []
        for level, x in enumerate(resize_level_features(features)):
            mask_inputs.append(self.level_mask_inputs(x, level, shared))
            cls_logits.append(self.cls_forward(x, level))
        return cls_logits, mask_inputs

    def shared_mask_features(self, features: List[Tensor]) -> Optional[Tensor]:
        """Mask features computed once from the unresized levels for all of them (SOLOv2's
        unified mask features); None by default."""
        return None

    def level_mask_inputs(self, x: Tensor, level: int, shared: Optional[Tensor]) -> Any:
        """Level ``level``'s mask inputs from its resized features ``x`` (N, C_in, H, W)."""
        raise NotImplementedError

    def mask_probs(
        self,
        mask_inputs: List[Any],
        level: int,
        batch_idx: Tensor,
        cell_idx: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """(K,) image and cell indices -> (K, h, w) sigmoid mask probabilities of those cells.

        ``cell_idx`` in [0, S_l^2), row-major; ``batch_idx`` the image of each (K >= 1). With
        ``out_size`` the probabilities are bilinearly resized after the sigmoid, as mmdet 3.3.0
        does at inference; without it they stay at :meth:`level_mask_size` (training).
        """
        parts, rows_all = [], []
        for b, rows in group_by_image(batch_idx):
            parts.append(self.image_mask_probs(mask_inputs, level, b, cell_idx[rows], out_size))
            rows_all.append(rows)
        probs = torch.cat(parts)
        out = torch.empty_like(probs)
        out[torch.cat(rows_all)] = probs
        return out

    def image_mask_probs(
        self,
        mask_inputs: List[Any],
        level: int,
        image: int,
        cells: Tensor,
        out_size: Optional[Sequence[int]] = None,
    ) -> Tensor:
        """:meth:`mask_probs` of the cells ``cells`` (K,), K >= 1, of image ``image``: (K, h, w).

        Tensor code without data-dependent Python, as inference is traced for ONNX export.
        """
        raise NotImplementedError

    def level_mask_size(self, mask_inputs: List[Any], level: int) -> Tuple[int, int]:
        """(h, w) of level ``level``'s mask predictions."""
        raise NotImplementedError

    def target_options(self) -> Dict[str, Any]:
        """Extra keyword arguments of ``targets.assign_targets_single`` for this head."""
        return {}

    def mask_branch_parameters(self) -> List[nn.Parameter]:
        """Every parameter but the category branch's: only the mask loss reaches them, and
        lazy projection leaves them out of the graph for levels (or whole batches) without
        positive cells (the meta-architecture touches them with weight 0)."""
        category = {id(p) for m in (self.cls_convs, self.conv_cls) for p in m.parameters()}
        return [p for p in self.parameters() if id(p) not in category]
