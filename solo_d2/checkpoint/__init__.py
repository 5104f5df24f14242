"""Checkpoints: the training checkpointer and weights by URL or by name (downloaded once,
verified, converted on load by solo_d2/convert when they come from another library)."""
from ..convert.foreign import convert_foreign
from ..convert.mmdet.errors import MMDetConversionError
from ..convert.safe_load import CheckpointReadError, load_numpy_pickle, load_torch_file
from ..convert.torchvision import convert_torchvision_resnet, save_d2_pickle
from .catalog import COCO_MODELS, PublishedModel, WeightsNameError, resolve_weights_name
from .checkpointer import SOLOCheckpointer
from .download import WeightsDownloadError, cached_path
from .path_handlers import PathManager, loadable_weights
from .verify import verify_loadable

# What loading MODEL.WEIGHTS can fail with, each one line naming the file or URL: the command
# lines print it as "error: ..." instead of a traceback.
WEIGHTS_ERRORS = (WeightsDownloadError, WeightsNameError, CheckpointReadError,
                  MMDetConversionError)

# the mmdet converter's names, imported on first use (PEP 562): ``import solo_d2`` does not
# import the converter
_MMDET_NAMES = ("HEAD_KEY_TABLE", "convert_mmdet_checkpoint", "convert_state_dict",
                "load_mmdet_config_file", "load_thing_classes", "mmdet_config_to_d2",
                "parse_mmdet_config", "write_outputs")


def __getattr__(name: str):
    if name in _MMDET_NAMES:
        from ..convert import mmdet

        return getattr(mmdet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SOLOCheckpointer",
    "WEIGHTS_ERRORS",
    "PathManager",
    "loadable_weights",
    "COCO_MODELS",
    "PublishedModel",
    "WeightsNameError",
    "WeightsDownloadError",
    "resolve_weights_name",
    "cached_path",
    "convert_foreign",
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
