"""Checkpoints of other libraries, recognised by their contents and converted on load.

Two kinds are recognised in an unpickled ``torch.save`` file:

* **mmdet** (2.x / 3.x): ``{"state_dict": {"backbone.*", "neck.*", "mask_head.*"}, "meta"}``,
  converted by :func:`~.mmdet.convert_mmdet_checkpoint` from the config it embeds (a model
  that is not SOLO-family is refused there, by name);
* **ImageNet ResNet / ResNeXt** in torchvision's naming (``conv1.weight``, ``layer1.0.*``;
  torchvision's and mmdet's ``open-mmlab://`` backbones), converted by
  :func:`~.torchvision.convert_torchvision_resnet` into Detectron2's model-zoo layout (names
  relative to the ResNet, placed by Detectron2's matching heuristics).

Anything else (Detectron2 and solo_d2 checkpoints) is not foreign: :func:`convert_foreign`
returns None and the file loads as it is.
"""
from typing import Any, Dict, List, Optional

__all__ = ["checkpoint_kind", "convert_foreign"]

_MMDET_PREFIXES = ("backbone.", "neck.", "mask_head.")


def _strip_module(state: Dict[str, Any]) -> Dict[str, Any]:
    """Names without DataParallel's ``module.`` prefix (mmengine strips it on load too)."""
    if state and all(isinstance(k, str) and k.startswith("module.") for k in state):
        return {k[len("module."):]: v for k, v in state.items()}
    return state


def checkpoint_kind(obj: Any) -> Optional[str]:
    """``"mmdet"``, ``"imagenet_resnet"`` or None (not a checkpoint of another library)."""
    if not isinstance(obj, dict) or "model" in obj:
        return None
    state = obj.get("state_dict")
    if isinstance(state, dict):
        state = _strip_module(state)
        if any(str(k).startswith(_MMDET_PREFIXES) for k in state):
            return "mmdet"
    else:
        state = _strip_module(obj)
    if "conv1.weight" in state and any(str(k).startswith("layer1.") for k in state):
        return "imagenet_resnet"
    return None


def convert_foreign(
    obj: Any, source: str, default_classes: Optional[List[str]] = None
) -> Optional[Dict[str, Any]]:
    """A checkpoint of another library as the dict Detectron2's checkpointer loads, or None.

    Args:
        obj: the unpickled file.
        source: the file or URL, for messages.
        default_classes: class names to record when an mmdet checkpoint carries none (the
            dataset of a published checkpoint, :func:`~.catalog.thing_classes_of_url`).
    Returns:
        ``{"model", "__author__", "matching_heuristics"[, "thing_classes"]}`` or None.
    Raises:
        MMDetConversionError: an mmdet checkpoint that does not convert, naming ``source``.
        ValueError: a ResNet-like state dict with names that are not a ResNet's.
    """
    kind = checkpoint_kind(obj)
    if kind is None:
        return None
    if kind == "mmdet":
        from .mmdet import convert_mmdet_checkpoint

        ckpt = dict(obj, state_dict=_strip_module(obj["state_dict"]))
        out, _, _ = convert_mmdet_checkpoint(ckpt, name=source)
        if "thing_classes" not in out and default_classes is not None:
            out["thing_classes"] = list(default_classes)
        return out
    from .torchvision import convert_torchvision_resnet

    state = obj.get("state_dict", obj)
    try:
        model = convert_torchvision_resnet(_strip_module(state))
    except ValueError as e:
        raise ValueError(f"{source}: looks like an ImageNet ResNet but does not convert ({e})")
    return {"model": model, "__author__": "torchvision", "matching_heuristics": True}
