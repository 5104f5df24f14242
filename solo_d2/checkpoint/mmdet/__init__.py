"""Convert mmdetection (2.x / 3.x) SOLO-family checkpoints to solo_d2. One job per module:

* :mod:`.heads`: what each supported head *is*, described once (:data:`MMDET_HEADS`: name,
  mmdet detector type, key-table rows, mmdet reference config, head-specific settings);
  :data:`SUPPORTED_MODEL_TYPES` and :data:`HEAD_KEY_TABLE` are derived from it.
* :mod:`.config_reader`: the safe reader of mmdet python config files (``ast``, never executed).
* :mod:`.key_map`: state-dict key mapping, mmdet names -> solo_d2 names.
* :mod:`.d2_config`: mmdet config -> Detectron2 config.
* :mod:`.convert`: checkpoint read / convert / verify / write, and class names.
* :mod:`.mmcv_layers` (mmcv norm / DCN settings as Detectron2 names) and :mod:`.errors`
  (:class:`MMDetConversionError`) serve the others.

``tools/convert_mmdet_checkpoint.py`` is the command line.
"""
from .config_reader import load_mmdet_config_file, merge_config_dicts, parse_mmdet_config
from .convert import (
    AUTHOR,
    convert_mmdet_checkpoint,
    load_mmdet_checkpoint,
    load_thing_classes,
    verify_loadable,
    write_outputs,
)
from .d2_config import mmdet_config_to_d2
from .errors import MMDetConversionError
from .heads import (
    HEAD_KEY_TABLE,
    MMDET_HEADS,
    SUPPORTED_MODEL_TYPES,
    KeyRow,
    MMDetHead,
    mmdet_configs_dir,
    mmdet_head,
)
from .key_map import convert_state_dict

__all__ = [
    "MMDetConversionError",
    "parse_mmdet_config",
    "load_mmdet_config_file",
    "merge_config_dicts",
    "mmdet_config_to_d2",
    "convert_state_dict",
    "load_mmdet_checkpoint",
    "convert_mmdet_checkpoint",
    "verify_loadable",
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
