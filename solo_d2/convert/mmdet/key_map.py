"""State-dict key mapping: mmdet SOLO-family names -> solo_d2 names (:func:`convert_state_dict`).

The backbone (mmdet ResNet / ResNeXt, DCN / DCNv2 stages included) maps onto Detectron2's
ResNet, the FPN onto Detectron2's FPN, and the head through its rows of the one key table,
:data:`~.heads.HEAD_KEY_TABLE` (derived from :data:`~.heads.MMDET_HEADS`). A deformable
ResNet block's offset conv is mmcv's ``conv2.conv_offset`` and Detectron2's ``conv2_offset``
(DeformBottleneckBlock).

Kinds of mmdet submodules in a key-table row, and how their parameter names change:

* ``"plain"``: nn.Conv2d / nn.ModuleList of them; names unchanged below the prefix.
* ``"convmodule"``: one mmcv ConvModule: ``conv.X`` -> ``X``, ``gn|bn|ln.X`` -> ``norm.X``
  (plain and deformable convs alike: our conv_norm_relu / DeformConv keep weight, bias,
  ``conv_offset.*`` and ``norm.*`` at that level).
* ``"convmodule_list"``: a ModuleList/Sequential of ConvModules: ``{i}.<convmodule rest>``.
* ``"convmodule_seqs"``: a ModuleList of Sequentials of named ConvModules (SOLOv2's
  MaskFeatModule.convs_all_levels): ``{i}.{name}.<convmodule rest>``.
"""
import re
from typing import Dict, List, Sequence

import torch

from ..torchvision import map_resnet_key
from .errors import MMDetConversionError
from .heads import HEAD_KEY_TABLE

__all__ = ["convert_state_dict", "HEAD_KEY_TABLE", "KEY_KINDS"]

KEY_KINDS = ("plain", "convmodule", "convmodule_list", "convmodule_seqs")

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
