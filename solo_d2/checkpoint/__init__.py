"""Checkpoints: the training checkpointer, code-free reading of files from elsewhere, and the
converters of mmdet SOLO-family checkpoints and torchvision ImageNet ResNets."""
from .checkpointer import SOLOCheckpointer
from .mmdet import (
    HEAD_KEY_TABLE,
    MMDetConversionError,
    convert_mmdet_checkpoint,
    convert_state_dict,
    load_mmdet_config_file,
    load_thing_classes,
    mmdet_config_to_d2,
    parse_mmdet_config,
    verify_loadable,
    write_outputs,
)
from .safe_load import CheckpointReadError, load_numpy_pickle, load_torch_file
from .torchvision import convert_torchvision_resnet, save_d2_pickle

__all__ = [
    "SOLOCheckpointer",
    "CheckpointReadError",
    "load_numpy_pickle",
    "load_torch_file",
    "HEAD_KEY_TABLE",
    "MMDetConversionError",
    "convert_mmdet_checkpoint",
    "convert_state_dict",
    "load_mmdet_config_file",
    "load_thing_classes",
    "mmdet_config_to_d2",
    "parse_mmdet_config",
    "verify_loadable",
    "write_outputs",
    "convert_torchvision_resnet",
    "save_d2_pickle",
]
