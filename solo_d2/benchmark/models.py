"""The models a benchmark compares: ours from a config (yaml or LazyConfig), mmdet 3.3.0's
reference from an mmdet config (random init; yaml configs only), the two with identical
weights, and "alt" (ours with overrides).

Which mmdet config a head is compared with comes from
:data:`solo_d2.convert.mmdet.MMDET_HEADS` (each head's ``reference_config``).
"""
import shlex
import types
from typing import Optional, Tuple

from detectron2.config import CfgNode
from torch import nn

from solo_d2.engine.configs import (
    AnyConfig,
    build_solo_model,
    config_device,
    config_weights,
    is_lazy,
    with_overrides,
)

from solo_d2.convert.mmdet import (
    MMDET_HEADS,
    MMDetConversionError,
    convert_state_dict,
    load_mmdet_config_file,
    mmdet_config_to_d2,
)

from .errors import BenchmarkError

__all__ = [
    "SIDES",
    "alt_cfg",
    "amp_cfg",
    "side_amp",
    "build_ours",
    "mmdet_harness",
    "mmdet_config_path",
    "build_mmdet",
    "build_pair",
    "build_side",
]

# the models a benchmark can measure: ours, mmdet's reference, ours with --vs-opts overrides,
# ours under autocast (--amp: MODEL.SOLO.TEST.AMP for inference, autocast for training)
SIDES = ("ours", "mmdet", "alt", "amp")


def amp_cfg(cfg: AnyConfig, amp: str) -> AnyConfig:
    """``cfg`` with MODEL.SOLO.TEST.AMP (a LazyConfig's ``model.inference_amp``) ``amp``
    (a copy)."""
    if is_lazy(cfg):
        return alt_cfg(cfg, f"model.inference_amp={amp}")
    return alt_cfg(cfg, f"MODEL.SOLO.TEST.AMP {amp}")


def side_amp(side: str, amp: str) -> str:
    """The autocast dtype name ``side`` runs in: ``amp`` for "amp", "" (fp32) otherwise."""
    return amp if side == "amp" else ""


def alt_cfg(cfg: AnyConfig, vs_opts: str) -> AnyConfig:
    """``cfg`` with the overrides ``vs_opts`` (in one string: "KEY VALUE ..." for a yaml
    config, "key=value ..." for a LazyConfig) applied (a copy)."""
    return with_overrides(cfg, shlex.split(vs_opts))


def build_ours(cfg: AnyConfig, load_weights: bool = True) -> nn.Module:
    """solo_d2's model in eval mode, with the config's weights (MODEL.WEIGHTS /
    ``train.init_checkpoint``) loaded when set and asked for."""
    from solo_d2.checkpoint import SOLOCheckpointer

    model = build_solo_model(cfg)
    weights = config_weights(cfg)
    if load_weights and weights:
        SOLOCheckpointer(model).load(weights)
    model.eval()
    return model


def mmdet_harness() -> types.ModuleType:
    """:mod:`solo_d2.testing.mmdet_reference` with mmdet imported (compiled mmcv ops stubbed)."""
    from solo_d2.testing import mmdet_reference

    if mmdet_reference.import_mmdet() is None:
        raise BenchmarkError("--vs-mmdet needs mmdet 3.3.0, mmengine and mmcv(-lite) installed")
    return mmdet_reference


def _yaml_only(cfg: AnyConfig) -> None:
    if is_lazy(cfg):
        raise BenchmarkError("--vs-mmdet compares with a yaml config; a LazyConfig builds the "
                             "same model as its yaml twin (configs/<name>.yaml)")


def mmdet_config_path(cfg: CfgNode, explicit: Optional[str]) -> str:
    """``explicit``, else the mmdet reference config of ``cfg.MODEL.SOLO.HEAD_NAME``
    (MMDET_HEADS, in the installed mmdet's ``.mim/configs``)."""
    _yaml_only(cfg)
    if explicit:
        return explicit
    head = cfg.MODEL.SOLO.HEAD_NAME
    if head not in MMDET_HEADS:
        raise BenchmarkError(f"no default mmdet config for head {head!r}; pass --mmdet-config")
    try:
        return MMDET_HEADS[head].reference_config_path()
    except MMDetConversionError as e:
        raise BenchmarkError(f"--vs-mmdet: {e}") from None


def build_mmdet(cfg: CfgNode, mmdet_config: str, seed: int = 0) -> Tuple[nn.Module, dict]:
    """mmdet's model (random init, no pretrained download, ``cfg``'s class count) on
    ``cfg.MODEL.DEVICE``, and its mmdet config dict."""
    _yaml_only(cfg)
    harness = mmdet_harness()
    mm_cfg = load_mmdet_config_file(mmdet_config)
    mm_cfg["model"]["backbone"]["init_cfg"] = None
    mm_cfg["model"]["mask_head"]["num_classes"] = cfg.MODEL.SOLO.NUM_CLASSES
    model = harness.build_mmdet_model(mm_cfg, seed=seed)
    return model.to(config_device(cfg)), mm_cfg


def build_pair(cfg: CfgNode, mmdet_config: str, seed: int = 0) -> Tuple[nn.Module, nn.Module]:
    """(ours, theirs) with identical weights: mmdet's random init converted into ours by
    solo_d2's converter; both in eval mode."""
    mm, mm_cfg = build_mmdet(cfg, mmdet_config, seed)
    _, stages = mmdet_config_to_d2(mm_cfg, mmdet_config)
    sd = convert_state_dict(mm.state_dict(), mm_cfg["model"]["mask_head"]["type"], stages)
    ours = build_ours(cfg, load_weights=False)
    missing, unexpected = ours.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in ("pixel_mean", "pixel_std")]
    if missing or unexpected:
        raise BenchmarkError(f"converted mmdet weights do not fit {cfg.MODEL.SOLO.HEAD_NAME}: "
                             f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return ours.eval(), mm.eval()


def build_side(
    cfg: CfgNode, side: str, mmdet_config: Optional[str], vs_opts: str = "", seed: int = 0,
    amp: str = "",
) -> nn.Module:
    """One model on its own (as a fresh memory-measuring process builds it): ``side`` "ours"
    and "alt" (``cfg`` with ``vs_opts``) load ``cfg.MODEL.WEIGHTS``; "mmdet" is its random
    init from ``mmdet_config`` (default: the head's reference config); "amp" is "ours" with
    MODEL.SOLO.TEST.AMP ``amp``."""
    if side not in SIDES:
        raise BenchmarkError(f"unknown model {side!r}; expected one of {SIDES}")
    if side == "mmdet":
        return build_mmdet(cfg, mmdet_config_path(cfg, mmdet_config), seed)[0]
    if side == "amp":
        return build_ours(amp_cfg(cfg, amp), load_weights=True)
    return build_ours(alt_cfg(cfg, vs_opts) if side == "alt" else cfg, load_weights=True)
