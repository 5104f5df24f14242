"""What each supported mmdet SOLO-family head *is*, described once.

One :class:`MMDetHead` per head, in :data:`MMDET_HEADS` (by name): its name (solo_d2's
``MODEL.SOLO.HEAD_NAME``, equal to mmdet's ``mask_head.type``), the mmdet detector type it
belongs to, the rows of its state-dict key table, the mmdet 3.3.0 reference config of it that
ships in the mmdet wheel (``mmdet/.mim/configs/``), and the settings the config translation
needs beyond the ones every head shares. The converter, the benchmark and the tests read it
from here; :data:`SUPPORTED_MODEL_TYPES` and :data:`HEAD_KEY_TABLE` are views derived from it.
Adding a head is one more entry (plus, where it has new config keys, its ``extra_settings``).
"""
import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .errors import MMDetConversionError, require
from .mmcv_layers import dcn_type, norm_name

__all__ = [
    "KeyRow",
    "MMDetHead",
    "MMDET_HEADS",
    "mmdet_head",
    "mmdet_configs_dir",
    "SUPPORTED_MODEL_TYPES",
    "HEAD_KEY_TABLE",
]


class KeyRow(NamedTuple):
    """One row of a head's key table: an mmdet submodule and solo_d2's name for it."""

    mmdet: str  # module path under "mask_head." in the mmdet state dict
    ours: str  # module path under "head." in solo_d2's state dict
    kind: str  # how the names below it change; the kinds are described in .key_map


# (mask_head dict, the head's norm name) -> MODEL.SOLO.* values (flat "A.B" keys) of one head
SettingsFn = Callable[[dict, str], Dict[str, Any]]


@dataclass(frozen=True)
class MMDetHead:
    """One supported head. ``reference_config`` is relative to ``mmdet/.mim/configs``."""

    name: str  # MODEL.SOLO.HEAD_NAME == mmdet mask_head.type
    detector: str  # mmdet model.type it belongs to: "SOLO" | "SOLOv2"
    key_rows: Tuple[KeyRow, ...]  # mmdet -> solo_d2 names below "mask_head." / "head."
    reference_config: str  # mmdet 3.3.0 ResNet-50 config of this head, e.g. "solo/..."
    accepts_dcn_cfg: bool = False  # mask_head.dcn_cfg (deformable tower convs) is supported
    extra_settings: Optional[SettingsFn] = None  # MODEL.SOLO.* values only this head has

    def reference_config_path(self, configs_dir: Optional[str] = None) -> str:
        """Path of :attr:`reference_config` under ``configs_dir`` (default: the installed
        mmdet's ``.mim/configs``, found without importing mmdet)."""
        if configs_dir is None:
            configs_dir = mmdet_configs_dir()
        if configs_dir is None:
            raise MMDetConversionError(
                f"the reference config of {self.name} ({self.reference_config}) ships with "
                "the mmdet wheel under mmdet/.mim/configs/, and no mmdet is installed"
            )
        return os.path.join(configs_dir, self.reference_config)


def mmdet_configs_dir() -> Optional[str]:
    """The installed mmdet's config folder (``.../mmdet/.mim/configs``), or None. mmdet is
    located, not imported."""
    spec = importlib.util.find_spec("mmdet")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = os.path.join(list(spec.submodule_search_locations)[0], ".mim", "configs")
    return d if os.path.isdir(d) else None


def _solov2_settings(head: dict, norm: str) -> Dict[str, Any]:
    """MODEL.SOLO.* values only SOLOV2Head has: the mask-feature branch and dynamic convs."""
    mf = head.get("mask_feature_head")
    require(isinstance(mf, dict), "SOLOV2Head without a mask_feature_head dict")
    for k in ("feat_channels", "start_level", "end_level", "out_channels"):
        require(k in mf, f"mask_head.mask_feature_head has no {k!r} (mmdet requires it)")
    # mmdet's MaskFeatModule defaults to no norm; solo_d2's uses the head's MODEL.SOLO.NORM.
    mf_norm = norm_name(mf.get("norm_cfg"), "mask_head.mask_feature_head.norm_cfg")
    require(mf_norm == norm,
            f"mask_head.mask_feature_head.norm_cfg={mf.get('norm_cfg')!r} differs from the "
            f"head's norm ({norm or 'none'!r}); solo_d2 uses MODEL.SOLO.NORM for both")
    conv_cfg = mf.get("conv_cfg")
    if int(head.get("cls_down_index", 0)) != 0:
        warnings.warn(f"SOLOV2Head ignores cls_down_index={head['cls_down_index']} (it resizes "
                      "before the first conv); writing MODEL.SOLO.CLS_DOWN_INDEX 0")
    return {
        "CLS_DOWN_INDEX": 0,
        "DYNAMIC_CONV_SIZE": int(head.get("dynamic_conv_size", 1)),
        "DCN_APPLY_TO_ALL_CONV": bool(head.get("dcn_apply_to_all_conv", True)),
        "MASK_FEAT.FEAT_CHANNELS": int(mf["feat_channels"]),
        "MASK_FEAT.START_LEVEL": int(mf["start_level"]),
        "MASK_FEAT.END_LEVEL": int(mf["end_level"]),
        "MASK_FEAT.OUT_CHANNELS": int(mf["out_channels"]),
        "MASK_FEAT.MASK_STRIDE": int(mf.get("mask_stride", 4)),
        "MASK_FEAT.DCN_TYPE": (dcn_type(conv_cfg, "mask_head.mask_feature_head.conv_cfg")
                               if conv_cfg else ""),
    }


_HEADS = (
    MMDetHead(
        name="SOLOHead",
        detector="SOLO",
        key_rows=(
            KeyRow("mask_convs", "mask_convs", "convmodule_list"),
            KeyRow("cls_convs", "cls_convs", "convmodule_list"),
            KeyRow("conv_mask_list", "conv_mask_list", "plain"),
            KeyRow("conv_cls", "conv_cls", "plain"),
        ),
        reference_config="solo/solo_r50_fpn_1x_coco.py",
    ),
    MMDetHead(
        name="DecoupledSOLOHead",
        detector="SOLO",
        key_rows=(
            KeyRow("mask_convs_x", "mask_convs_x", "convmodule_list"),
            KeyRow("mask_convs_y", "mask_convs_y", "convmodule_list"),
            KeyRow("cls_convs", "cls_convs", "convmodule_list"),
            KeyRow("conv_mask_list_x", "conv_mask_list_x", "plain"),
            KeyRow("conv_mask_list_y", "conv_mask_list_y", "plain"),
            KeyRow("conv_cls", "conv_cls", "plain"),
        ),
        reference_config="solo/decoupled-solo_r50_fpn_1x_coco.py",
    ),
    MMDetHead(
        name="DecoupledSOLOLightHead",
        detector="SOLO",
        key_rows=(
            KeyRow("mask_convs", "mask_convs", "convmodule_list"),
            KeyRow("cls_convs", "cls_convs", "convmodule_list"),
            KeyRow("conv_mask_list_x", "conv_mask_list_x", "plain"),
            KeyRow("conv_mask_list_y", "conv_mask_list_y", "plain"),
            KeyRow("conv_cls", "conv_cls", "plain"),
        ),
        reference_config="solo/decoupled-solo-light_r50_fpn_3x_coco.py",
        accepts_dcn_cfg=True,
    ),
    MMDetHead(
        name="SOLOV2Head",
        detector="SOLOv2",
        key_rows=(
            KeyRow("kernel_convs", "kernel_convs", "convmodule_list"),
            KeyRow("cls_convs", "cls_convs", "convmodule_list"),
            KeyRow("conv_kernel", "conv_kernel", "plain"),
            KeyRow("conv_cls", "conv_cls", "plain"),
            KeyRow("mask_feature_head.convs_all_levels", "mask_feature_head.convs_all_levels",
                   "convmodule_seqs"),
            KeyRow("mask_feature_head.conv_pred", "mask_feature_head.conv_pred", "convmodule"),
        ),
        reference_config="solov2/solov2_r50_fpn_1x_coco.py",
        accepts_dcn_cfg=True,
        extra_settings=_solov2_settings,
    ),
)

# The description: head name -> MMDetHead, in a fixed order (SOLO's heads, then SOLOv2's).
MMDET_HEADS: Dict[str, MMDetHead] = {h.name: h for h in _HEADS}

# Derived: mmdet detector type -> the head types solo_d2 can load into it.
SUPPORTED_MODEL_TYPES: Dict[str, Tuple[str, ...]] = {}
for _h in _HEADS:
    SUPPORTED_MODEL_TYPES[_h.detector] = SUPPORTED_MODEL_TYPES.get(_h.detector, ()) + (_h.name,)
del _h

# Derived: head type -> [(mmdet name under "mask_head.", our name under "head.", kind)].
HEAD_KEY_TABLE: Dict[str, List[Tuple[str, str, str]]] = {
    h.name: [tuple(r) for r in h.key_rows] for h in _HEADS
}


def mmdet_head(name: str) -> MMDetHead:
    """The description of head ``name`` (MODEL.SOLO.HEAD_NAME / mmdet mask_head.type)."""
    if name not in MMDET_HEADS:
        raise MMDetConversionError(
            f"head {name!r} is not an mmdet SOLO-family head solo_d2 converts; "
            f"known: {sorted(MMDET_HEADS)}"
        )
    return MMDET_HEADS[name]
