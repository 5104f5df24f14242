"""Which backbone levels a SOLO head reads, and what follows from their shapes.

The meta-architecture (:class:`~solo_d2.modeling.SOLO`) takes any Detectron2 backbone: the
head reads the outputs named by ``head_in_features`` (finest first), is built for their
channels and number, and the levels' nominal strides follow from theirs. Every mismatch is
a ``ValueError`` at build time that names the levels.
"""
from typing import Dict, List, Optional, Sequence

from detectron2.layers import ShapeSpec

from ..heads.base import describe_levels

__all__ = ["read_levels", "solo_level_strides", "check_per_level"]


def read_levels(shapes: Dict[str, ShapeSpec], in_features: Sequence[str]) -> List[ShapeSpec]:
    """The shapes of the backbone outputs ``in_features``, in that order.

    Raises:
        ValueError: naming the missing levels and the backbone's outputs, or when fewer than
            two levels are read (SOLO resizes the finest and the coarsest level).
    """
    in_features = list(in_features)
    missing = [f for f in in_features if f not in shapes]
    if missing:
        raise ValueError(
            f"head_in_features (MODEL.SOLO.IN_FEATURES) {missing} are not outputs of the "
            f"backbone, which gives {describe_levels(list(shapes.values()), list(shapes))}"
        )
    if len(in_features) < 2:
        raise ValueError(
            f"head_in_features (MODEL.SOLO.IN_FEATURES) is {in_features}; SOLO reads at least "
            "two levels (it halves the finest and resizes the coarsest to the one above)"
        )
    return [shapes[f] for f in in_features]


def solo_level_strides(level_shapes: Sequence[ShapeSpec]) -> Optional[List[int]]:
    """The strides of the levels after SOLO's level resizing
    (:func:`~solo_d2.heads.resize_level_features`): the finest halved, the coarsest
    matched to the one above; p2..p6 give 8, 8, 16, 32, 32 (mmdet's ``strides``). None when a
    level's stride is unknown."""
    strides = [s.stride for s in level_shapes]
    if any(s is None for s in strides):
        return None
    out = [int(s) for s in strides]
    out[-1] = out[-2]  # the unresized level above (for two levels: the finest, before halving)
    out[0] = 2 * int(strides[0])
    return out


def check_per_level(in_features: Sequence[str], **lists: Sequence) -> None:
    """Raise a ValueError naming the levels unless each of ``lists`` has one entry per level."""
    wrong = {name: len(v) for name, v in lists.items() if len(v) != len(in_features)}
    if wrong:
        counts = ", ".join(f"{name} has {n}" for name, n in wrong.items())
        raise ValueError(
            f"the head reads {len(in_features)} levels {list(in_features)} "
            f"(head_in_features, MODEL.SOLO.IN_FEATURES) but {counts} entries; give one per "
            "level (MODEL.SOLO.NUM_GRIDS, STRIDES, SCALE_RANGES)"
        )
