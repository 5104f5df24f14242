"""Files from other libraries, read without running their code and converted to solo_d2's:
mmdet SOLO-family checkpoints and configs, torchvision / open-mmlab ImageNet ResNets.

* :mod:`.safe_load`: torch and Detectron2 files unpickled without running code (other classes
  become inert stand-ins; ``trusted=True`` is the only way round), one-line errors;
* :mod:`.foreign`: what kind of file an unpickled checkpoint is, and its conversion on load;
* :mod:`.torchvision`: ImageNet ResNet / ResNeXt names -> Detectron2's model-zoo names;
* :mod:`.mmdet`: mmdet checkpoints and python configs -> solo_d2 (imported on first use).
"""
from .foreign import checkpoint_kind, convert_foreign
from .safe_load import CheckpointReadError, load_numpy_pickle, load_torch_file
from .torchvision import convert_torchvision_resnet, save_d2_pickle

__all__ = [
    "checkpoint_kind",
    "convert_foreign",
    "CheckpointReadError",
    "load_numpy_pickle",
    "load_torch_file",
    "convert_torchvision_resnet",
    "save_d2_pickle",
]
