"""torchvision ImageNet ResNet weights -> Detectron2's backbone naming.

The output is what Detectron2's ``tools/convert-torchvision-to-d2.py`` writes: a pickle of
``{"model": {name: ndarray}, "__author__": "torchvision", "matching_heuristics": True}``
whose names are relative to the ResNet (``stem.conv1.weight``, ``res2.0.conv1.norm.weight``,
``res2.0.shortcut.weight``, ...); DetectionCheckpointer's matching heuristics then place them
under ``backbone.bottom_up.``. The classifier (``fc.*``) and ``num_batches_tracked`` are dropped.
"""
import pickle
import re
from typing import Dict

import numpy as np
import torch

__all__ = ["convert_torchvision_resnet", "map_resnet_key", "save_d2_pickle"]

_RESNET_STEM_RE = re.compile(r"^(conv1|bn1|gn1)\.(.+)$")
_RESNET_BLOCK_RE = re.compile(r"^layer(\d)\.(\d+)\.(.+)$")
_BLOCK_CONV_RE = re.compile(r"^(?:conv(\d)|(?:bn|gn)(\d))\.(.+)$")


def map_resnet_key(k: str) -> str:
    """torchvision ResNet name (mmdet's ResNet uses the same, with ``gn`` for GroupNorm) ->
    Detectron2 ResNet name: ``layer1.0.bn2.weight`` -> ``res2.0.conv2.norm.weight``."""
    m = _RESNET_STEM_RE.match(k)
    if m:
        name, rest = m.groups()
        return "stem.conv1." + ("" if name == "conv1" else "norm.") + rest
    m = _RESNET_BLOCK_RE.match(k)
    if not m:
        raise KeyError(k)
    stage, block, rest = m.groups()
    prefix = f"res{int(stage) + 1}.{block}."
    if rest.startswith("downsample.0."):
        return prefix + "shortcut." + rest[len("downsample.0."):]
    if rest.startswith("downsample.1."):
        return prefix + "shortcut.norm." + rest[len("downsample.1."):]
    m = _BLOCK_CONV_RE.match(rest)
    if not m:
        raise KeyError(k)
    conv_i, norm_i, tail = m.groups()
    return prefix + (f"conv{conv_i}." if conv_i else f"conv{norm_i}.norm.") + tail


def convert_torchvision_resnet(state_dict: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """torchvision ``resnet*`` state dict -> {Detectron2 ResNet name: float ndarray}.

    Raises:
        ValueError: for keys that are not part of a torchvision ResNet.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
        state_dict = state_dict["state_dict"]
    out, unknown = {}, []
    for k, v in state_dict.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        try:
            out[map_resnet_key(k)] = v.detach().cpu().numpy()
        except KeyError:
            unknown.append(k)
    if unknown:
        raise ValueError(f"not torchvision ResNet keys: {unknown[:10]}")
    if "stem.conv1.weight" not in out:
        raise ValueError("no conv1.weight: this is not a torchvision ResNet state dict")
    return out


def save_d2_pickle(model: Dict[str, np.ndarray], path: str) -> None:
    """Write Detectron2's model-zoo pickle format that DetectionCheckpointer reads (.pkl)."""
    with open(path, "wb") as f:
        pickle.dump({"model": model, "__author__": "torchvision", "matching_heuristics": True}, f)
