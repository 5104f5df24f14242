"""Config checks run when the model is built: ``validate_solo_config(cfg)`` checks every
``MODEL.SOLO.*`` value.

yacs checks only that a value keeps its type at the top (a list stays a list), so a flat
``SCALE_RANGES``, a float grid size or a zero class count would otherwise fail later, deep
inside a layer or a target assignment, or not at all. Each error names the key, the value
and what is expected.
"""
import numbers
from typing import Any, Callable, List

from detectron2.config import CfgNode
from detectron2.layers import get_norm

__all__ = ["validate_solo_config"]


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


class _Checker:
    """Collects the failed checks of one config, each as 'KEY is VALUE; expected ...'."""

    def __init__(self, cfg: CfgNode):
        self.cfg = cfg
        self.errors: List[str] = []

    def value(self, key: str) -> Any:
        node = self.cfg
        for part in key.split("."):
            node = node[part]
        return node

    def check(self, key: str, ok: Callable[[Any], bool], expected: str) -> bool:
        v = self.value(key)
        try:
            good = bool(ok(v))
        except (TypeError, ValueError, KeyError, AssertionError):
            good = False
        if not good:
            self.errors.append(f"{key} is {v!r}; expected {expected}")
        return good

    def int_at_least(self, key: str, low: int) -> bool:
        return self.check(key, lambda v: _is_int(v) and v >= low, f"an integer >= {low}")

    def real_in(self, key: str, low: float, high: float, low_open: bool, high_open: bool) -> bool:
        def ok(v):
            return (
                _is_real(v)
                and (v > low if low_open else v >= low)
                and (v < high if high_open else v <= high)
            )

        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        return self.check(key, ok, f"a number in {interval}")

    def one_of(self, key: str, choices) -> bool:
        return self.check(key, lambda v: v in choices, f"one of {list(choices)}")

    def boolean(self, key: str) -> bool:
        return self.check(key, lambda v: isinstance(v, bool), "True or False")


def _known_norm(norm: str) -> bool:
    if norm == "":
        return True
    get_norm(norm, 32)  # raises for names Detectron2 does not know
    return True


def validate_solo_config(cfg: CfgNode) -> None:
    """Raise ValueError listing every ``MODEL.SOLO.*`` value that the model cannot use."""
    c = _Checker(cfg)
    s = "MODEL.SOLO."
    c.int_at_least(s + "NUM_CLASSES", 1)
    c.check(s + "IN_FEATURES", lambda v: len(v) >= 1 and all(isinstance(f, str) for f in v),
            "a non-empty list of backbone feature names")
    levels = len(cfg.MODEL.SOLO.IN_FEATURES)
    per_level = f"one per level: {levels} entries, as IN_FEATURES"
    c.check(s + "NUM_GRIDS", lambda v: len(v) == levels and all(_is_int(g) and g >= 1 for g in v),
            f"integers >= 1, {per_level}")
    c.check(s + "STRIDES", lambda v: len(v) == levels and all(_is_int(x) and x >= 1 for x in v),
            f"integers >= 1, {per_level}")
    c.check(
        s + "SCALE_RANGES",
        lambda v: len(v) == levels
        and all(len(r) == 2 and all(map(_is_real, r)) and 0 <= r[0] <= r[1] for r in v),
        f"[lo, hi] pairs with 0 <= lo <= hi, {per_level}",
    )
    c.real_in(s + "POS_SCALE", 0, float("inf"), False, True)
    c.check(s + "NORM", _known_norm, "'' or a norm Detectron2's get_norm knows")
    channel_keys = [s + "FEAT_CHANNELS", s + "MASK_FEAT.FEAT_CHANNELS", s + "MASK_FEAT.OUT_CHANNELS"]
    for key in channel_keys:
        if c.int_at_least(key, 1) and cfg.MODEL.SOLO.NORM == "GN":
            c.check(key, lambda v: v % 32 == 0, "a multiple of 32: MODEL.SOLO.NORM 'GN' has 32 groups")
    if c.int_at_least(s + "STACKED_CONVS", 1):
        c.check(s + "CLS_DOWN_INDEX",
                lambda v: _is_int(v) and 0 <= v < cfg.MODEL.SOLO.STACKED_CONVS,
                "an integer in [0, STACKED_CONVS)")
    c.one_of(s + "DCN_TYPE", ("", "DCN", "DCNv2"))
    c.boolean(s + "DCN_APPLY_TO_ALL_CONV")
    c.boolean(s + "DROP_VANISHED_TARGETS")
    c.boolean(s + "RECOMPUTE_NORM_ACT")
    c.one_of(s + "MEMORY_FORMAT", ("auto", "channels_last", "contiguous"))
    c.real_in(s + "PRIOR_PROB", 0, 1, True, True)

    m = s + "MASK_FEAT."
    c.int_at_least(m + "MASK_STRIDE", 1)
    c.one_of(m + "DCN_TYPE", ("", "DCN", "DCNv2"))
    if c.int_at_least(m + "START_LEVEL", 0):
        c.check(m + "END_LEVEL",
                lambda v: _is_int(v) and cfg.MODEL.SOLO.MASK_FEAT.START_LEVEL <= v < levels,
                f"an integer in [START_LEVEL, {levels}) (an index into IN_FEATURES)")
    c.check(s + "DYNAMIC_CONV_SIZE", lambda v: _is_int(v) and v >= 1 and v % 2 == 1,
            "an odd integer >= 1")

    loss = s + "LOSS."
    c.real_in(loss + "DICE_WEIGHT", 0, float("inf"), False, True)
    c.real_in(loss + "FOCAL_WEIGHT", 0, float("inf"), False, True)
    c.real_in(loss + "FOCAL_GAMMA", 0, float("inf"), False, True)
    c.check(loss + "FOCAL_ALPHA", lambda v: _is_real(v) and v <= 1,
            "a number in [0, 1], or negative for no class weighting (fvcore's focal loss)")

    t = s + "TEST."
    for key in ("NMS_PRE", "MAX_PER_IMG"):
        c.check(t + key, lambda v: _is_int(v) and (v >= 1 or v == -1),
                "an integer >= 1, or -1 for no limit")
    c.real_in(t + "SCORE_THRESH", 0, 1, False, True)
    c.real_in(t + "MASK_THRESH", 0, 1, True, True)
    c.real_in(t + "FILTER_THRESH", 0, 1, False, True)
    c.one_of(t + "KERNEL", ("gaussian", "linear"))
    c.real_in(t + "SIGMA", 0, float("inf"), True, True)
    c.one_of(t + "AMP", ("", "bfloat16", "float16"))
    if c.errors:
        raise ValueError("Invalid config values:\n  " + "\n  ".join(c.errors))
