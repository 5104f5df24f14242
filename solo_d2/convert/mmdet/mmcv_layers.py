"""mmcv layer settings as Detectron2 names: a ``norm_cfg`` dict -> a ``get_norm`` name, a
deformable ``conv_cfg`` / ``dcn_cfg`` dict -> ``"DCN"`` | ``"DCNv2"``. Shared by the head
descriptions (:mod:`.heads`) and the config translation (:mod:`.d2_config`)."""
from typing import Any, Optional

from .errors import MMDetConversionError, require

__all__ = ["norm_name", "dcn_type"]


def norm_name(norm_cfg: Optional[dict], where: str) -> str:
    """mmcv norm_cfg -> Detectron2 get_norm name (GN must have 32 groups, as get_norm)."""
    if not norm_cfg:
        return ""
    t = norm_cfg.get("type")
    if t == "GN":
        require(
            norm_cfg.get("num_groups", 32) == 32,
            f"{where}: GN with num_groups={norm_cfg.get('num_groups')} (solo_d2 uses 32)",
        )
        return "GN"
    if t in ("BN", "SyncBN"):
        return t
    raise MMDetConversionError(f"{where}: unsupported norm_cfg {norm_cfg}")


def dcn_type(dcn: Any, where: str) -> str:
    """mmcv conv_cfg / dcn_cfg of a deformable conv -> "DCN" | "DCNv2" (one deform group)."""
    require(isinstance(dcn, dict) and dcn.get("type") in ("DCN", "DCNv2"),
            f"{where}={dcn!r}: only dict(type='DCN') or dict(type='DCNv2') is supported")
    groups = dcn.get("deform_groups", dcn.get("deformable_groups", 1))
    require(int(groups) == 1, f"{where}: deform_groups={groups} (the head supports 1)")
    return dcn["type"]
