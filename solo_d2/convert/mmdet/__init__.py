"""Convert mmdetection (2.x / 3.x) SOLO-family checkpoints to solo_d2. One job per module:

* :mod:`.heads`: what each supported head *is*, described once (:data:`MMDET_HEADS`: name,
  mmdet detector type, key-table rows, mmdet reference config, head-specific settings);
  :data:`SUPPORTED_MODEL_TYPES` and :data:`HEAD_KEY_TABLE` are derived from it.
* :mod:`.config_reader`: the safe reader of mmdet python config files (``ast``, never executed).
* :mod:`.key_map`: state-dict key mapping, mmdet names -> solo_d2 names.
* :mod:`.d2_config`: mmdet config -> Detectron2 config.
* :mod:`.convert`: checkpoint read / convert / write, and class names (whether the result
  fits the model: :func:`solo_d2.checkpoint.verify_loadable`).
* :mod:`.mmcv_layers` (mmcv norm / DCN settings as Detectron2 names) and :mod:`.errors`
  (:class:`MMDetConversionError`) serve the others.

``tools/convert_mmdet_checkpoint.py`` is the command line.
"""
import importlib
from typing import Any

# name -> the module that defines it: imported on first use (PEP 562), so that importing
# solo_d2 (which loads the checkpointer) does not import the converter
_HOME = {
    "MMDetConversionError": "errors",
    "parse_mmdet_config": "config_reader",
    "load_mmdet_config_file": "config_reader",
    "merge_config_dicts": "config_reader",
    "mmdet_config_to_d2": "d2_config",
    "convert_state_dict": "key_map",
    "load_mmdet_checkpoint": "convert",
    "convert_mmdet_checkpoint": "convert",
    "write_outputs": "convert",
    "load_thing_classes": "convert",
    "AUTHOR": "convert",
    "MMDetHead": "heads",
    "KeyRow": "heads",
    "MMDET_HEADS": "heads",
    "mmdet_head": "heads",
    "mmdet_configs_dir": "heads",
    "HEAD_KEY_TABLE": "heads",
    "SUPPORTED_MODEL_TYPES": "heads",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


__all__ = [
    "MMDetConversionError",
    "parse_mmdet_config",
    "load_mmdet_config_file",
    "merge_config_dicts",
    "mmdet_config_to_d2",
    "convert_state_dict",
    "load_mmdet_checkpoint",
    "convert_mmdet_checkpoint",
    "write_outputs",
    "load_thing_classes",
    "AUTHOR",
    "MMDetHead",
    "KeyRow",
    "MMDET_HEADS",
    "mmdet_head",
    "mmdet_configs_dir",
    "HEAD_KEY_TABLE",
    "SUPPORTED_MODEL_TYPES",
]


def __dir__():
    return sorted(__all__)
