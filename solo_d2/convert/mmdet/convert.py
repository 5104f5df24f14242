"""Whole checkpoints: read an mmdet SOLO-family checkpoint without running code from it,
convert it (config via :mod:`.d2_config` or :mod:`.config_reader`, weights via
:mod:`.key_map`), write the outputs, and read the class names a conversion emitted. ``tools/convert_mmdet_checkpoint.py`` is the command line.
"""
import json
import os
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import torch

from ...utils.file_io import atomic_write
from ..safe_load import CheckpointReadError, load_torch_file
from .config_reader import load_mmdet_config_file, parse_mmdet_config
from .d2_config import mmdet_config_to_d2
from .errors import MMDetConversionError, require
from .key_map import convert_state_dict

if TYPE_CHECKING:
    from detectron2.config import CfgNode

__all__ = [
    "AUTHOR",
    "load_mmdet_checkpoint",
    "convert_mmdet_checkpoint",
    "write_outputs",
    "load_thing_classes",
]

AUTHOR = "solo_d2 mmdet converter"


def load_mmdet_checkpoint(path: str, trusted: bool = False) -> Dict[str, Any]:
    """Read an mmdet checkpoint without running code from it (see
    :func:`~solo_d2.convert.safe_load.load_torch_file`); ``trusted=True`` unpickles it
    fully, for files the user trusts. Any failure is an MMDetConversionError naming the file."""
    try:
        return load_torch_file(path, trusted=trusted)
    except CheckpointReadError as e:
        raise MMDetConversionError(str(e)) from e


def _embedded_config(meta: Dict[str, Any]) -> Tuple[Optional[str], str]:
    for key in ("cfg", "config"):  # 3.x, 2.x
        text = meta.get(key)
        if isinstance(text, str) and text.strip():
            return text, f"meta[{key!r}]"
    return None, ""


def _class_names(meta: Dict[str, Any]) -> Optional[List[str]]:
    dm = meta.get("dataset_meta")
    if isinstance(dm, dict) and dm.get("classes"):
        return [str(c) for c in dm["classes"]]
    if meta.get("CLASSES"):
        return [str(c) for c in meta["CLASSES"]]
    return None


def convert_mmdet_checkpoint(
    checkpoint: Any,
    mmdet_config: Optional[str] = None,
    weights_path: str = "",
    trusted: bool = False,
    name: Optional[str] = None,
) -> Tuple[Dict[str, Any], "CfgNode", Optional[List[str]]]:
    """Convert an mmdet SOLO-family checkpoint.

    Args:
        checkpoint: a path or the loaded ``{"state_dict", "meta"}`` dict.
        mmdet_config: optional path of the mmdet ``.py`` config (overrides the embedded one).
        weights_path: written into the config as MODEL.WEIGHTS.
        trusted: the user trusts the checkpoint file: unpickle it fully (may run code).
        name: how messages call the checkpoint (default: its path, or "checkpoint").
    Returns:
        ``(d2_checkpoint, cfg, class_names)``: ``{"model", "__author__",
        "matching_heuristics": False[, "thing_classes"]}``, the Detectron2 CfgNode and the
        class names (None when the checkpoint has none).
    """
    if isinstance(checkpoint, str):
        ckpt = load_mmdet_checkpoint(checkpoint, trusted=trusted)
    else:
        ckpt = checkpoint
    if name is None:
        name = checkpoint if isinstance(checkpoint, str) else "checkpoint"
    require(isinstance(ckpt, dict), f"{name}: expected a dict, found {type(ckpt).__name__}")
    state_dict = ckpt.get("state_dict", ckpt.get("model"))
    require(isinstance(state_dict, dict),
            f"{name}: no 'state_dict' in the checkpoint (keys: {sorted(ckpt)[:10]})")
    meta = ckpt.get("meta") or {}
    if mmdet_config is not None:
        mm = load_mmdet_config_file(mmdet_config)
        source = mmdet_config
    else:
        text, where = _embedded_config(meta)
        require(text is not None,
                f"{name}: the checkpoint embeds no config (meta has {sorted(meta)[:10]}); "
                "pass the mmdet config file with --mmdet-config")
        source = f"{name} {where}"
        mm = parse_mmdet_config(text, source=source)
    cfg, stages = mmdet_config_to_d2(mm, source)
    cfg.MODEL.WEIGHTS = weights_path
    head_type = cfg.MODEL.SOLO.HEAD_NAME
    model_sd = convert_state_dict(state_dict, head_type, stages)
    classes = _class_names(meta)
    if classes is not None and len(classes) != cfg.MODEL.SOLO.NUM_CLASSES:
        warnings.warn(f"{len(classes)} class names in meta but num_classes="
                      f"{cfg.MODEL.SOLO.NUM_CLASSES}; ignoring the names")
        classes = None
    out = {"model": model_sd, "__author__": AUTHOR, "matching_heuristics": False}
    if classes is not None:
        out["thing_classes"] = classes
    return out, cfg, classes


def write_outputs(
    d2_ckpt: Dict[str, Any], cfg: "CfgNode", dst: str, config_out: Optional[str]
) -> List[str]:
    """Save the checkpoint, the yaml config ``config_out`` (when given) and, when there are
    class names, ``<dst without extension>.classes.json``; returns the paths written. (A
    LazyConfig instead of the yaml is ``solo_d2.lazy``'s to write:
    ``tools/convert_mmdet_checkpoint.py --config-out X.py`` composes the two.)"""
    written = []
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    atomic_write(dst, lambda f: torch.save(d2_ckpt, f))
    written.append(dst)
    if config_out:
        text = cfg.dump()
        atomic_write(config_out, lambda f: f.write(text.encode()))
        written.append(config_out)
    if d2_ckpt.get("thing_classes"):
        path = os.path.splitext(dst)[0] + ".classes.json"
        text = json.dumps(d2_ckpt["thing_classes"], indent=1)
        atomic_write(path, lambda f: f.write(text.encode()))
        written.append(path)
    return written


def load_thing_classes(path: str) -> Optional[List[str]]:
    """Class names a conversion emitted: from ``X.classes.json`` or from a converted
    checkpoint's ``"thing_classes"`` (None when it has none). For
    ``MetadataCatalog.get(name).thing_classes = load_thing_classes(...)``."""
    if path.endswith(".json"):
        with open(path) as f:
            return [str(c) for c in json.load(f)]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    classes = ckpt.get("thing_classes") if isinstance(ckpt, dict) else None
    return list(classes) if classes is not None else None
