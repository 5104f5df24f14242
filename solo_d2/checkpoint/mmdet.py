"""Convert mmdetection (2.x / 3.x) SOLO-family checkpoints to solo_d2.

Three parts:

* :func:`parse_mmdet_config` / :func:`load_mmdet_config_file`: read an mmdet python config
  *without executing it* (python ``ast`` on literals, ``dict(...)``, names bound earlier in
  the file, arithmetic and ``{{_base_.x}}`` references; ``_base_`` inheritance with
  mmengine's dict-merge semantics, ``_delete_=True`` included).
* :func:`mmdet_config_to_d2`: the mmdet model/pipeline settings -> a Detectron2 config
  (``get_cfg()`` + ``add_solo_config``) that builds the same network.
* :func:`convert_state_dict`: table-driven key mapping (:data:`HEAD_KEY_TABLE`) from mmdet
  names to solo_d2 names. Adding a head is one more table row plus, where it has new config
  keys, a few lines in :func:`_head_settings` (as SOLOv2's :func:`_solov2_settings`).
  Backbones: mmdet ResNet / ResNeXt, with DCN / DCNv2 stages (Detectron2's
  DeformBottleneckBlock; its offset conv is ``conv2_offset`` where mmcv has ``conv2.conv_offset``).

:func:`convert_mmdet_checkpoint` ties them together; ``tools/convert_mmdet_checkpoint.py``
is its command line.
"""
import ast
import copy
import json
import logging
import os
import re
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .checkpointer import atomic_write
from .safe_load import CheckpointReadError, load_torch_file
from .torchvision import map_resnet_key

__all__ = [
    "MMDetConversionError",
    "parse_mmdet_config",
    "load_mmdet_config_file",
    "merge_config_dicts",
    "mmdet_config_to_d2",
    "convert_state_dict",
    "load_mmdet_checkpoint",
    "convert_mmdet_checkpoint",
    "HEAD_KEY_TABLE",
    "SUPPORTED_MODEL_TYPES",
    "load_thing_classes",
]

logger = logging.getLogger(__name__)

AUTHOR = "solo_d2 mmdet converter"

# mmdet detector type -> the head types solo_d2 can load into it.
SUPPORTED_MODEL_TYPES = {
    "SOLO": ("SOLOHead", "DecoupledSOLOHead", "DecoupledSOLOLightHead"),
    "SOLOv2": ("SOLOV2Head",),
}


class MMDetConversionError(ValueError):
    """A checkpoint or config that this converter cannot (or refuses to) convert."""


# ----------------------------------------------------------------------------------------
# Safe config parsing
# ----------------------------------------------------------------------------------------
_BASE_REF = "__solo_d2_base_ref__"
_BASE_REF_RE = re.compile(r"\{\{\s*_base_\.([A-Za-z_][\w.]*)\s*\}\}")
_ALLOWED_CALLS = {"dict": dict, "list": list, "tuple": tuple, "set": set}
_BINOPS: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


class _SafeEvaluator:
    """Evaluates the expression subset that mmdet configs use; anything else is an error."""

    def __init__(self, names: Dict[str, Any], source: str):
        self.names = names
        self.source = source

    def fail(self, node: ast.AST, what: str):
        line = getattr(node, "lineno", "?")
        raise MMDetConversionError(
            f"mmdet config {self.source}: unsupported {what} at line {line} "
            f"({ast.dump(node)[:80]}...); only literals, dict(...), names and arithmetic are read"
        )

    def __call__(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    items.extend(self(e.value))
                else:
                    items.append(self(e))
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    out.update(self(v))
                else:
                    out[self(k)] = self(v)
            return out
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise MMDetConversionError(
                    f"mmdet config {self.source}: name {node.id!r} at line {node.lineno} is not "
                    "defined earlier in the config"
                )
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            base = self(node.value)
            if isinstance(base, dict) and node.attr in base:
                return base[node.attr]
            self.fail(node, f"attribute {node.attr!r}")
        if isinstance(node, ast.Subscript):
            return self(node.value)[self(node.slice)]
        if isinstance(node, ast.UnaryOp):
            v = self(node.operand)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            if isinstance(node.op, ast.Not):
                return not v
            self.fail(node, "unary operator")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self(node.left), self(node.right))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _ALLOWED_CALLS:
                self.fail(node, "call")
            fn = _ALLOWED_CALLS[node.func.id]
            args = [self(a) for a in node.args]
            if fn is dict:
                out = dict(*args)
                for kw in node.keywords:
                    if kw.arg is None:  # dict(**other)
                        out.update(self(kw.value))
                    else:
                        out[kw.arg] = self(kw.value)
                return out
            if node.keywords:
                self.fail(node, "keyword arguments")
            return fn(*args)
        self.fail(node, "expression")


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_to_plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_to_plain(v) for v in x)
    return x


def parse_mmdet_config(
    text: str, source: str = "<config text>", base_vars: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Top-level variables of an mmdet config given as python text, read without executing it.

    ``{{_base_.x}}`` references are resolved against ``base_vars`` (the merged ``_base_``
    configs). Imports are ignored; any other statement kind is an error naming its line.
    """
    text = _BASE_REF_RE.sub(lambda m: f"{_BASE_REF}.{m.group(1)}", text)
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as e:
        raise MMDetConversionError(f"mmdet config {source} is not valid python: {e}") from e
    names: Dict[str, Any] = {_BASE_REF: base_vars or {}}
    ev = _SafeEvaluator(names, source)
    out: Dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in stmt.names]
            if isinstance(stmt, ast.ImportFrom) and "read_base" in mods:
                raise MMDetConversionError(
                    f"mmdet config {source} is a 'pure python' (read_base) config, which this "
                    "converter does not read; pass a classic text config with --mmdet-config"
                )
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if stmt.value is None:
                continue
            value = ev(stmt.value)
            for t in targets:
                if not isinstance(t, ast.Name):
                    ev.fail(t, "assignment target")
                names[t.id] = value
                out[t.id] = value
            continue
        ev.fail(stmt, f"statement {type(stmt).__name__}")
    return _to_plain(out)


def merge_config_dicts(base: Dict[str, Any], child: Dict[str, Any]) -> Dict[str, Any]:
    """mmengine's merge: child dicts merge into base dicts key by key unless they carry
    ``_delete_=True`` (then they replace); every other value replaces. Returns a new dict."""
    out = copy.deepcopy(base)
    for k, v in child.items():
        if isinstance(v, dict):
            v = dict(v)
            delete = v.pop("_delete_", False)
            if not delete and isinstance(out.get(k), dict):
                out[k] = merge_config_dicts(out[k], v)
            else:
                out[k] = merge_config_dicts({}, v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _strip_delete(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip_delete(v) for k, v in x.items() if k != "_delete_"}
    if isinstance(x, list):
        return [_strip_delete(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_strip_delete(v) for v in x)
    return x


def load_mmdet_config_file(path: str, _seen: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Read an mmdet ``.py`` config file and its ``_base_`` files (relative to it), safely."""
    path = os.path.abspath(path)
    if path in _seen:
        raise MMDetConversionError(f"mmdet config {path}: circular _base_ chain {_seen}")
    if not os.path.isfile(path):
        raise MMDetConversionError(f"mmdet config file {path} does not exist")
    if not path.endswith(".py"):
        raise MMDetConversionError(f"mmdet config {path}: only .py configs are supported")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tree = ast.parse(text, filename=path)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as e:
        raise MMDetConversionError(f"mmdet config {path}: cannot be read as python ({e})") from e
    # First pass: only the _base_ list (it must be a literal).
    bases: List[str] = []
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "_base_"
        ):
            value = _SafeEvaluator({}, path)(stmt.value)
            bases = [value] if isinstance(value, str) else list(value)
    merged: Dict[str, Any] = {}
    for b in bases:
        bpath = os.path.join(os.path.dirname(path), b)
        merged = merge_config_dicts(merged, load_mmdet_config_file(bpath, _seen + (path,)))
    own = parse_mmdet_config(text, source=path, base_vars=merged)
    own.pop("_base_", None)
    return _strip_delete(merge_config_dicts(merged, own))


# ----------------------------------------------------------------------------------------
# State dict key mapping
# ----------------------------------------------------------------------------------------
# Kinds of mmdet submodules, and how their parameter names change:
#   "plain":            nn.Conv2d / nn.ModuleList of them; names unchanged below the prefix.
#   "convmodule":       one mmcv ConvModule: "conv.X" -> "X", "gn|bn|ln.X" -> "norm.X"
#                       (plain and deformable convs alike: our conv_norm_relu / DeformConv
#                       keep weight, bias, conv_offset.* and norm.* at that level).
#   "convmodule_list":  a ModuleList/Sequential of ConvModules: "{i}.<convmodule rest>".
#   "convmodule_seqs":  a ModuleList of Sequentials of named ConvModules (SOLOv2's
#                       MaskFeatModule.convs_all_levels): "{i}.{name}.<convmodule rest>".
# HEAD_KEY_TABLE[head type] = [(mmdet name under "mask_head.", our name under "head.", kind)].
HEAD_KEY_TABLE: Dict[str, List[Tuple[str, str, str]]] = {
    "SOLOHead": [
        ("mask_convs", "mask_convs", "convmodule_list"),
        ("cls_convs", "cls_convs", "convmodule_list"),
        ("conv_mask_list", "conv_mask_list", "plain"),
        ("conv_cls", "conv_cls", "plain"),
    ],
    "DecoupledSOLOHead": [
        ("mask_convs_x", "mask_convs_x", "convmodule_list"),
        ("mask_convs_y", "mask_convs_y", "convmodule_list"),
        ("cls_convs", "cls_convs", "convmodule_list"),
        ("conv_mask_list_x", "conv_mask_list_x", "plain"),
        ("conv_mask_list_y", "conv_mask_list_y", "plain"),
        ("conv_cls", "conv_cls", "plain"),
    ],
    "DecoupledSOLOLightHead": [
        ("mask_convs", "mask_convs", "convmodule_list"),
        ("cls_convs", "cls_convs", "convmodule_list"),
        ("conv_mask_list_x", "conv_mask_list_x", "plain"),
        ("conv_mask_list_y", "conv_mask_list_y", "plain"),
        ("conv_cls", "conv_cls", "plain"),
    ],
    # solo_d2.modeling.solov2_head.solov2_head_key_map gives the same names (tested).
    "SOLOV2Head": [
        ("kernel_convs", "kernel_convs", "convmodule_list"),
        ("cls_convs", "cls_convs", "convmodule_list"),
        ("conv_kernel", "conv_kernel", "plain"),
        ("conv_cls", "conv_cls", "plain"),
        ("mask_feature_head.convs_all_levels", "mask_feature_head.convs_all_levels",
         "convmodule_seqs"),
        ("mask_feature_head.conv_pred", "mask_feature_head.conv_pred", "convmodule"),
    ],
}

_NORM_NAME_RE = re.compile(r"^(gn|bn|ln|norm)\.")


def _convmodule_rest(rest: str) -> str:
    if rest.startswith("conv."):
        return rest[len("conv."):]
    if _NORM_NAME_RE.match(rest):
        return _NORM_NAME_RE.sub("norm.", rest)
    raise KeyError(rest)


def _map_kind(kind: str, rest: str) -> str:
    if kind == "plain":
        return rest
    if kind == "convmodule":
        return _convmodule_rest(rest)
    if kind == "convmodule_list":
        idx, _, sub = rest.partition(".")
        if not idx.isdigit():
            raise KeyError(rest)
        return f"{idx}.{_convmodule_rest(sub)}"
    if kind == "convmodule_seqs":
        idx, name, sub = (rest.split(".", 2) + ["", ""])[:3]
        if not idx.isdigit() or not name or not sub:
            raise KeyError(rest)
        return f"{idx}.{name}.{_convmodule_rest(sub)}"
    raise ValueError(f"unknown key-table kind {kind!r}")


def _map_backbone_key(k: str) -> str:
    """mmdet ResNet / ResNeXt name -> Detectron2 ResNet name. A deformable block's offset conv,
    mmcv's ``layerX.Y.conv2.conv_offset.*`` (inside the DCN module), is Detectron2's
    ``resX+1.Y.conv2_offset.*`` (DeformBottleneckBlock's sibling of ``conv2``)."""
    m = re.match(r"^(layer\d\.\d+)\.conv2\.conv_offset\.(weight|bias)$", k)
    if m:
        new = map_resnet_key(f"{m.group(1)}.conv2.{m.group(2)}")
        return new[: -len(f"conv2.{m.group(2)}")] + f"conv2_offset.{m.group(2)}"
    return map_resnet_key(k)


def convert_state_dict(
    state_dict: Dict[str, torch.Tensor], head_type: str, fpn_stages: Sequence[int]
) -> Dict[str, torch.Tensor]:
    """mmdet SOLO state dict -> solo_d2 ``SOLO`` state dict.

    Args:
        head_type: mmdet ``mask_head.type`` (a key of :data:`HEAD_KEY_TABLE`).
        fpn_stages: Detectron2 stage number (2 for res2, ...) of each FPN input, i.e. the
            suffix of ``fpn_lateral{s}``/``fpn_output{s}`` for mmdet FPN index 0, 1, ...
    Raises:
        MMDetConversionError: listing every key that has no mapping.
    """
    if head_type not in HEAD_KEY_TABLE:
        raise MMDetConversionError(
            f"no key mapping for head type {head_type!r}; known: {sorted(HEAD_KEY_TABLE)}"
        )
    rows = sorted(HEAD_KEY_TABLE[head_type], key=lambda r: -len(r[0]))  # longest prefix first
    out: Dict[str, torch.Tensor] = {}
    unmapped: List[str] = []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        try:
            if key.startswith("backbone."):
                new = "backbone.bottom_up." + _map_backbone_key(key[len("backbone."):])
            elif key.startswith("neck."):
                m = re.match(r"^(lateral_convs|fpn_convs)\.(\d+)\.(.+)$", key[len("neck."):])
                if not m:
                    raise KeyError(key)
                which, i, rest = m.groups()
                name = "fpn_lateral" if which == "lateral_convs" else "fpn_output"
                new = f"backbone.{name}{fpn_stages[int(i)]}.{_convmodule_rest(rest)}"
            elif key.startswith("mask_head."):
                rest = key[len("mask_head."):]
                for src, dst, kind in rows:
                    if rest.startswith(src + "."):
                        new = f"head.{dst}.{_map_kind(kind, rest[len(src) + 1:])}"
                        break
                else:
                    raise KeyError(key)
            else:
                raise KeyError(key)
        except (KeyError, IndexError):
            unmapped.append(key)
            continue
        if new in out:
            raise MMDetConversionError(f"two mmdet keys map to {new!r} (second: {key!r})")
        out[new] = value.detach().clone() if torch.is_tensor(value) else torch.as_tensor(value)
    if unmapped:
        raise MMDetConversionError(
            f"{len(unmapped)} mmdet keys of a {head_type} checkpoint have no solo_d2 mapping: "
            f"{unmapped[:10]}{' ...' if len(unmapped) > 10 else ''}"
        )
    return out


# ----------------------------------------------------------------------------------------
# mmdet config -> Detectron2 config
# ----------------------------------------------------------------------------------------
def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise MMDetConversionError(msg)


def _norm_name(norm_cfg: Optional[dict], where: str) -> str:
    """mmcv norm_cfg -> Detectron2 get_norm name (GN must have 32 groups, as get_norm)."""
    if not norm_cfg:
        return ""
    t = norm_cfg.get("type")
    if t == "GN":
        _require(
            norm_cfg.get("num_groups", 32) == 32,
            f"{where}: GN with num_groups={norm_cfg.get('num_groups')} (solo_d2 uses 32)",
        )
        return "GN"
    if t in ("BN", "SyncBN"):
        return t
    raise MMDetConversionError(f"{where}: unsupported norm_cfg {norm_cfg}")


def _find_transforms(pipeline: Any) -> List[dict]:
    """All transform dicts of a pipeline, nested ones (MultiScaleFlipAug, TTA) included."""
    out: List[dict] = []
    if isinstance(pipeline, dict):
        out.append(pipeline)
        for key in ("transforms",):
            out.extend(_find_transforms(pipeline.get(key)))
    elif isinstance(pipeline, (list, tuple)):
        for p in pipeline:
            out.extend(_find_transforms(p))
    return out


def _test_pipeline(cfg: Dict[str, Any]) -> Optional[list]:
    for top in ("test_dataloader", "val_dataloader"):  # 3.x
        ds = (cfg.get(top) or {}).get("dataset") or {}
        if ds.get("pipeline"):
            return ds["pipeline"]
    ds = (cfg.get("data") or {}).get("test") or {}  # 2.x
    if isinstance(ds, dict) and ds.get("pipeline"):
        return ds["pipeline"]
    return cfg.get("test_pipeline")


def _test_scale(cfg: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """(short, long) edge limits of the test resize, or None when the config has none."""
    transforms = _find_transforms(_test_pipeline(cfg))
    scale = None
    for t in transforms:
        if t.get("type") == "MultiScaleFlipAug":  # 2.x
            s = t.get("img_scale", t.get("scale"))
            if isinstance(s, list):
                if len(s) > 1:
                    warnings.warn(f"multi-scale test {s}: using the first scale")
                s = s[0]
            scale = s
        elif t.get("type") == "Resize":
            if t.get("keep_ratio", True) is False:
                warnings.warn("test Resize with keep_ratio=False cannot be expressed by "
                              "ResizeShortestEdge; using its scale as short/long edge limits")
            s = t.get("scale", t.get("img_scale"))
            if s is not None:
                scale = s[0] if isinstance(s, list) else s
    if scale is None:
        return None
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        warnings.warn(f"test resize scale {scale!r} is not a (w, h) pair; keeping defaults")
        return None
    return int(min(scale)), int(max(scale))


def _normalisation(cfg: Dict[str, Any]) -> Tuple[List[float], List[float], str]:
    """(mean, std, "RGB"|"BGR") of the model input, from 3.x data_preprocessor or 2.x."""
    dp = (cfg.get("model") or {}).get("data_preprocessor")
    if dp:
        mean = dp.get("mean") or [0.0, 0.0, 0.0]
        std = dp.get("std") or [1.0, 1.0, 1.0]
        rgb = bool(dp.get("bgr_to_rgb", False) or dp.get("rgb_to_bgr", False))
        return [float(v) for v in mean], [float(v) for v in std], "RGB" if rgb else "BGR"
    norm = cfg.get("img_norm_cfg")
    if norm is None:
        for t in _find_transforms(_test_pipeline(cfg)):
            if t.get("type") == "Normalize":
                norm = t
                break
    _require(norm is not None, "mmdet config has neither model.data_preprocessor nor "
             "img_norm_cfg / a Normalize transform: cannot tell the input normalisation")
    fmt = "RGB" if norm.get("to_rgb", True) else "BGR"
    return [float(v) for v in norm["mean"]], [float(v) for v in norm["std"]], fmt


def _dcn_type(dcn: Any, where: str) -> str:
    """mmcv conv_cfg / dcn_cfg of a deformable conv -> "DCN" | "DCNv2" (one deform group)."""
    _require(isinstance(dcn, dict) and dcn.get("type") in ("DCN", "DCNv2"),
             f"{where}={dcn!r}: only dict(type='DCN') or dict(type='DCNv2') is supported")
    groups = dcn.get("deform_groups", dcn.get("deformable_groups", 1))
    _require(int(groups) == 1, f"{where}: deform_groups={groups} (the head supports 1)")
    return dcn["type"]


def _solov2_settings(head: dict, norm: str) -> Dict[str, Any]:
    """MODEL.SOLO.* values only SOLOV2Head has: the mask-feature branch and dynamic convs."""
    mf = head.get("mask_feature_head")
    _require(isinstance(mf, dict), "SOLOV2Head without a mask_feature_head dict")
    for k in ("feat_channels", "start_level", "end_level", "out_channels"):
        _require(k in mf, f"mask_head.mask_feature_head has no {k!r} (mmdet requires it)")
    # mmdet's MaskFeatModule defaults to no norm; solo_d2's uses the head's MODEL.SOLO.NORM.
    mf_norm = _norm_name(mf.get("norm_cfg"), "mask_head.mask_feature_head.norm_cfg")
    _require(mf_norm == norm,
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
        "MASK_FEAT.DCN_TYPE": (_dcn_type(conv_cfg, "mask_head.mask_feature_head.conv_cfg")
                               if conv_cfg else ""),
    }


def _head_settings(head: dict, test_cfg: dict) -> Dict[str, Any]:
    """MODEL.SOLO.* values (flat key -> value) of an mmdet SOLO-family head dict."""
    out: Dict[str, Any] = {
        "HEAD_NAME": head["type"],
        "NUM_CLASSES": int(head["num_classes"]),
        "FEAT_CHANNELS": int(head.get("feat_channels", 256)),
        "STACKED_CONVS": int(head.get("stacked_convs", 4)),
        "STRIDES": [int(s) for s in head.get("strides", (4, 8, 16, 32, 64))],
        "SCALE_RANGES": [[int(a), int(b)] for a, b in head.get(
            "scale_ranges", ((8, 32), (16, 64), (32, 128), (64, 256), (128, 512)))],
        "POS_SCALE": float(head.get("pos_scale", 0.2)),
        "NUM_GRIDS": [int(s) for s in head.get("num_grids", (40, 36, 24, 16, 12))],
        "CLS_DOWN_INDEX": int(head.get("cls_down_index", 0)),
        # mmdet's default norm_cfg is 32-group GN; an explicit None means no norm
        "NORM": _norm_name(head.get("norm_cfg", {"type": "GN", "num_groups": 32}),
                           "mask_head.norm_cfg"),
    }
    dcn = head.get("dcn_cfg")
    if dcn:
        _require(head["type"] in ("DecoupledSOLOLightHead", "SOLOV2Head"),
                 f"dcn_cfg on {head['type']} is not supported")
        out["DCN_TYPE"] = _dcn_type(dcn, "mask_head.dcn_cfg")
    if head["type"] == "SOLOV2Head":
        out.update(_solov2_settings(head, out["NORM"]))
    loss_mask = head.get("loss_mask") or {}
    loss_cls = head.get("loss_cls") or {}
    if loss_mask and (loss_mask.get("type") != "DiceLoss" or loss_mask.get("eps", 1e-3) != 1e-3
                      or loss_mask.get("naive_dice", False)):
        warnings.warn(f"loss_mask {loss_mask} differs from mmdet's default DiceLoss, which "
                      "solo_d2 trains with (inference is unaffected)")
    if loss_cls and loss_cls.get("type") != "FocalLoss":
        warnings.warn(f"loss_cls {loss_cls.get('type')} is not FocalLoss; solo_d2 trains with "
                      "sigmoid focal loss (inference is unaffected)")
    out["LOSS.DICE_WEIGHT"] = float(loss_mask.get("loss_weight", 3.0))
    out["LOSS.FOCAL_ALPHA"] = float(loss_cls.get("alpha", 0.25))
    out["LOSS.FOCAL_GAMMA"] = float(loss_cls.get("gamma", 2.0))
    out["LOSS.FOCAL_WEIGHT"] = float(loss_cls.get("loss_weight", 1.0))
    test_keys = {
        "nms_pre": ("TEST.NMS_PRE", int),
        "score_thr": ("TEST.SCORE_THRESH", float),
        "mask_thr": ("TEST.MASK_THRESH", float),
        "filter_thr": ("TEST.FILTER_THRESH", float),
        "kernel": ("TEST.KERNEL", str),
        "sigma": ("TEST.SIGMA", float),
        "max_per_img": ("TEST.MAX_PER_IMG", int),
    }
    for k, (ours, typ) in test_keys.items():
        if k in test_cfg:
            out[ours] = typ(test_cfg[k])
    return out


def _resnext_widths(bb: dict, depth: int, source: str) -> Tuple[int, int]:
    """(RESNETS.NUM_GROUPS, WIDTH_PER_GROUP) of an mmdet ResNet / ResNeXt. mmdet's ResNeXt
    bottleneck width is floor(planes * base_width / 64) * groups (planes = 64 * 2^stage), or
    planes when groups == 1; Detectron2's is NUM_GROUPS * WIDTH_PER_GROUP * 2^stage."""
    if bb.get("type") != "ResNeXt":
        return 1, 64
    groups = int(bb.get("groups", 1))
    base_width = bb.get("base_width", 4)
    _require(depth >= 50, f"{source}: ResNeXt depth {depth} (mmdet builds 50, 101, 152)")
    if groups == 1:
        return 1, 64
    _require(float(base_width) == int(base_width) and int(base_width) > 0,
             f"{source}: ResNeXt base_width={base_width!r} must be a positive integer")
    return groups, int(base_width)


def _backbone_dcn(bb: dict, depth: int, source: str) -> Dict[str, Any]:
    """mmdet ResNet ``dcn`` / ``stage_with_dcn`` -> RESNETS.DEFORM_* values (Detectron2's
    DeformBottleneckBlock: every block of a stage, offset conv ``conv2_offset``)."""
    dcn = bb.get("dcn")
    stages = tuple(bool(v) for v in bb.get("stage_with_dcn", (False,) * 4))
    if not dcn or not any(stages):
        return {"on": [False] * 4, "modulated": False, "groups": 1}
    _require(len(stages) == 4, f"{source}: stage_with_dcn={stages} needs 4 entries")
    _require(isinstance(dcn, dict) and dcn.get("type") in ("DCN", "DCNv2"),
             f"{source}: backbone dcn={dcn!r}: only type 'DCN' or 'DCNv2' is supported")
    _require(depth >= 50, f"{source}: backbone dcn on ResNet-{depth}: Detectron2 has "
             "deformable blocks for bottleneck ResNets (depth >= 50) only")
    _require(not dcn.get("fallback_on_stride", False),
             f"{source}: backbone dcn fallback_on_stride=True is not supported")
    groups = int(dcn.get("deform_groups", dcn.get("deformable_groups", 1)))
    return {"on": list(stages), "modulated": dcn["type"] == "DCNv2", "groups": groups}


def _check_solo_family(cfg: Dict[str, Any], source: str) -> Tuple[dict, str]:
    model = cfg.get("model")
    _require(isinstance(model, dict) and "type" in model,
             f"{source}: no model=dict(type=...) found (top-level keys: {sorted(cfg)[:20]})")
    mtype = model["type"]
    head = model.get("mask_head") or {}
    htype = head.get("type")
    if mtype not in SUPPORTED_MODEL_TYPES or htype not in SUPPORTED_MODEL_TYPES[mtype]:
        supported = "; ".join(f"{m} with {', '.join(h)}" for m, h in SUPPORTED_MODEL_TYPES.items())
        raise MMDetConversionError(
            f"{source}: not a supported SOLO-family checkpoint: found model type {mtype!r} with "
            f"mask_head type {htype!r}; supported: {supported}"
        )
    return model, htype


def mmdet_config_to_d2(mm: Dict[str, Any], source: str = "mmdet config"):
    """Detectron2 config (``get_cfg()`` + ``add_solo_config``) for an mmdet SOLO config.

    Returns ``(cfg, fpn_stages)``: the CfgNode and the Detectron2 stage of each FPN input.
    """
    from detectron2.config import get_cfg

    from ..config import add_solo_config

    model, htype = _check_solo_family(mm, source)
    bb = model.get("backbone") or {}
    neck = model.get("neck") or {}
    head = model["mask_head"]

    _require(bb.get("type") in ("ResNet", "ResNeXt"),
             f"{source}: backbone type {bb.get('type')!r} is not supported (ResNet, ResNeXt)")
    depth = int(bb.get("depth", 50))
    _require(depth in (18, 34, 50, 101, 152), f"{source}: ResNet depth {depth}")
    _require(int(bb.get("num_stages", 4)) == 4, f"{source}: ResNet num_stages must be 4")
    num_groups, width_per_group = _resnext_widths(bb, depth, source)
    deform = _backbone_dcn(bb, depth, source)
    for key, default in (("deep_stem", False), ("avg_down", False), ("plugins", None)):
        _require(bb.get(key, default) in (default, False, None),
                 f"{source}: ResNet {key}={bb.get(key)!r} is not supported")
    _require(tuple(bb.get("dilations", (1, 1, 1, 1))) == (1, 1, 1, 1)
             and tuple(bb.get("strides", (1, 2, 2, 2))) == (1, 2, 2, 2),
             f"{source}: non-default ResNet strides/dilations are not supported")
    _require(int(bb.get("base_channels", 64)) == 64
             and int(bb.get("stem_channels", 64) or 64) == 64,
             f"{source}: ResNet base/stem channels other than 64 are not supported")
    style = bb.get("style", "pytorch")
    _require(style in ("pytorch", "caffe"), f"{source}: ResNet style {style!r}")
    bb_norm = bb.get("norm_cfg") or {"type": "BN"}
    norm_eval = bool(bb.get("norm_eval", True))
    if bb_norm.get("type") in ("BN", "SyncBN") and norm_eval:
        res_norm = "FrozenBN"
    else:
        res_norm = _norm_name(bb_norm, "backbone.norm_cfg")
    out_indices = tuple(int(i) for i in bb.get("out_indices", (0, 1, 2, 3)))

    _require(neck.get("type") == "FPN", f"{source}: neck type {neck.get('type')!r} (FPN only)")
    start = int(neck.get("start_level", 0))
    end = int(neck.get("end_level", -1))
    _require(end in (-1, len(out_indices) - 1), f"{source}: FPN end_level={end} unsupported")
    stages = [out_indices[i] + 2 for i in range(start, len(out_indices))]
    _require(stages == list(range(stages[0], 6)),
             f"{source}: FPN inputs res{stages} must be consecutive and end at res5")
    _require(not neck.get("add_extra_convs", False),
             f"{source}: FPN add_extra_convs={neck.get('add_extra_convs')!r} is not supported "
             "(Detectron2's LastLevelMaxPool is the add_extra_convs=False case)")
    _require(int(neck.get("num_outs", 5)) == len(stages) + 1,
             f"{source}: FPN num_outs={neck.get('num_outs')} with {len(stages)} inputs; "
             f"solo_d2 builds {len(stages) + 1} levels (one max-pooled extra level)")
    fpn_ch = int(neck.get("out_channels", 256))
    _require(int(head.get("in_channels", fpn_ch)) == fpn_ch,
             f"{source}: mask_head.in_channels {head.get('in_channels')} != FPN out {fpn_ch}")
    fpn_norm = _norm_name(neck.get("norm_cfg"), "neck.norm_cfg")
    levels = [f"p{s}" for s in stages] + [f"p{stages[-1] + 1}"]

    test_cfg = model.get("test_cfg") or mm.get("test_cfg") or {}
    solo = _head_settings(head, test_cfg)
    _require(len(solo["NUM_GRIDS"]) == len(levels),
             f"{source}: {len(solo['NUM_GRIDS'])} grids for {len(levels)} FPN levels")
    if "MASK_FEAT.END_LEVEL" in solo:
        _require(solo["MASK_FEAT.END_LEVEL"] < len(levels),
                 f"{source}: mask_feature_head.end_level={solo['MASK_FEAT.END_LEVEL']} but "
                 f"the head reads {len(levels)} levels")
    mean, std, fmt = _normalisation(mm)

    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.MODEL.META_ARCHITECTURE = "SOLO"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.PIXEL_MEAN = mean
    cfg.MODEL.PIXEL_STD = std
    cfg.INPUT.FORMAT = fmt
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    frozen = int(bb.get("frozen_stages", -1))
    cfg.MODEL.BACKBONE.FREEZE_AT = max(frozen + 1, 0)
    r = cfg.MODEL.RESNETS
    r.DEPTH = depth
    r.OUT_FEATURES = [f"res{s}" for s in stages]
    r.STRIDE_IN_1X1 = style == "caffe"
    r.NORM = res_norm
    r.NUM_GROUPS = num_groups
    r.WIDTH_PER_GROUP = width_per_group
    r.STEM_OUT_CHANNELS = 64
    r.RES2_OUT_CHANNELS = 64 if depth in (18, 34) else 256
    r.RES5_DILATION = 1
    r.DEFORM_ON_PER_STAGE = deform["on"]
    r.DEFORM_MODULATED = deform["modulated"]
    r.DEFORM_NUM_GROUPS = deform["groups"]
    cfg.MODEL.FPN.IN_FEATURES = [f"res{s}" for s in stages]
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_ch
    cfg.MODEL.FPN.NORM = fpn_norm
    cfg.MODEL.FPN.FUSE_TYPE = "sum"
    cfg.MODEL.SOLO.IN_FEATURES = levels
    for key, value in solo.items():
        node = cfg.MODEL.SOLO
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    scale = _test_scale(mm)
    if scale is not None:
        cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = scale
    else:
        warnings.warn("no test Resize in the mmdet config; keeping INPUT.*_SIZE_TEST defaults")
    cfg.INPUT.RESIZE_BACKEND = "cv2"
    cfg.INPUT.MASK_FORMAT = "polygon"
    if solo["NUM_CLASSES"] == 80:
        cfg.DATASETS.TRAIN = ("coco_2017_train",)
        cfg.DATASETS.TEST = ("coco_2017_val",)
    else:
        cfg.DATASETS.TRAIN = ()
        cfg.DATASETS.TEST = ()
    return cfg, stages


# ----------------------------------------------------------------------------------------
# Whole checkpoints
# ----------------------------------------------------------------------------------------
def load_mmdet_checkpoint(path: str, trusted: bool = False) -> Dict[str, Any]:
    """Read an mmdet checkpoint without running code from it (see
    :func:`~solo_d2.checkpoint.safe_load.load_torch_file`); ``trusted=True`` unpickles it
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
):
    """Convert an mmdet SOLO-family checkpoint.

    Args:
        checkpoint: a path or the loaded ``{"state_dict", "meta"}`` dict.
        mmdet_config: optional path of the mmdet ``.py`` config (overrides the embedded one).
        weights_path: written into the config as MODEL.WEIGHTS.
        trusted: the user trusts the checkpoint file: unpickle it fully (may run code).
    Returns:
        ``(d2_checkpoint, cfg, class_names)``: ``{"model", "__author__",
        "matching_heuristics": False[, "thing_classes"]}``, the Detectron2 CfgNode and the
        class names (None when the checkpoint has none).
    """
    if isinstance(checkpoint, str):
        ckpt = load_mmdet_checkpoint(checkpoint, trusted=trusted)
    else:
        ckpt = checkpoint
    name = checkpoint if isinstance(checkpoint, str) else "checkpoint"
    _require(isinstance(ckpt, dict), f"{name}: expected a dict, found {type(ckpt).__name__}")
    state_dict = ckpt.get("state_dict", ckpt.get("model"))
    _require(isinstance(state_dict, dict),
             f"{name}: no 'state_dict' in the checkpoint (keys: {sorted(ckpt)[:10]})")
    meta = ckpt.get("meta") or {}
    if mmdet_config is not None:
        mm = load_mmdet_config_file(mmdet_config)
        source = mmdet_config
    else:
        text, where = _embedded_config(meta)
        _require(text is not None,
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


def verify_loadable(cfg, model_state: Dict[str, torch.Tensor]) -> None:
    """Build solo_d2's model from ``cfg`` (CPU) and check the converted weights fit it exactly:
    no missing or unexpected keys and equal shapes."""
    from detectron2.modeling import build_model

    import solo_d2  # noqa: F401  registers SOLO

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    model = build_model(cfg)
    ours = {k: v for k, v in model.state_dict().items() if k not in ("pixel_mean", "pixel_std")}
    missing = sorted(set(ours) - set(model_state))
    unexpected = sorted(set(model_state) - set(ours))
    bad = [k for k in set(ours) & set(model_state) if ours[k].shape != model_state[k].shape]
    _require(not (missing or unexpected or bad),
             f"converted weights do not fit the model: missing {missing[:8]}, unexpected "
             f"{unexpected[:8]}, shape mismatch "
             f"{[(k, tuple(model_state[k].shape), tuple(ours[k].shape)) for k in bad[:8]]}")


def write_outputs(
    d2_ckpt: Dict[str, Any], cfg, dst: str, config_out: Optional[str]
) -> List[str]:
    """Save the checkpoint, the yaml and, when there are class names,
    ``<dst without extension>.classes.json``."""
    written = []
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    atomic_write(dst, lambda f: torch.save(d2_ckpt, f))
    written.append(dst)
    if config_out:
        with open(config_out, "w") as f:
            f.write(cfg.dump())
        written.append(config_out)
    if d2_ckpt.get("thing_classes"):
        path = os.path.splitext(dst)[0] + ".classes.json"
        with open(path, "w") as f:
            json.dump(d2_ckpt["thing_classes"], f, indent=1)
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
