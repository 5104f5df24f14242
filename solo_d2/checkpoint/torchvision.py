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

__all__ = ["convert_torchvision_resnet", "save_d2_pickle"]

_STEM_RE = re.compile(r"^(conv1|bn1)\.(.+)$")
_BLOCK_RE = re.compile(r"^layer([1-4])\.(\d+)\.(.+)$")
_PART_RE = re.compile(r"^(?:conv([1-3])|bn([1-3])|downsample\.([01]))\.(.+)$")


def _rename(key: str) -> str:
    m = _STEM_RE.match(key)
    if m:
        return "stem.conv1." + ("" if m.group(1) == "conv1" else "norm.") + m.group(2)
    m = _BLOCK_RE.match(key)
    if m:
        stage, block, rest = m.groups()
        p = _PART_RE.match(rest)
        if p:
            conv, bn, ds, tail = p.groups()
            if conv:
                part = f"conv{conv}."
            elif bn:
                part = f"conv{bn}.norm."
            else:
                part = "shortcut." if ds == "0" else "shortcut.norm."
            return f"res{int(stage) + 1}.{block}.{part}{tail}"
    raise KeyError(key)


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
            out[_rename(k)] = v.detach().cpu().numpy()
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
