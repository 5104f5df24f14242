"""Data: the SOLO and panoptic dataset mappers, image reading, bad-file handling, class-count
checks, datasets declared in the config, and the built-in shapes datasets.

Importing this package registers ``solo_shapes_train`` and ``solo_shapes_val``, and their
panoptic twins ``solo_shapes_panoptic_{train,val}`` (generated lazily, on first
``DatasetCatalog.get``).
"""
from ..shapes import CLASSES as SHAPES_CLASSES
from ..shapes import ShapesConfig
from .builtin import (
    BUILTIN_SHAPES,
    datasets_root,
    ensure_solo_shapes,
    get_solo_shapes_meta,
    register_solo_shapes,
)
from .builtin_panoptic import ensure_solo_shapes_panoptic, register_solo_shapes_panoptic
from .cfg_datasets import register_cfg_datasets
from .class_checks import check_dataset_classes
from .image_io import ImageReadError, read_image
from .mapper import SOLODatasetMapper
from .panoptic import PanopticLabels
from .panoptic_mapper import PanopticDatasetMapper

__all__ = [
    "BUILTIN_SHAPES",
    "ImageReadError",
    "SOLODatasetMapper",
    "PanopticDatasetMapper",
    "PanopticLabels",
    "check_dataset_classes",
    "read_image",
    "register_cfg_datasets",
    "SHAPES_CLASSES",
    "ShapesConfig",
    "datasets_root",
    "ensure_solo_shapes",
    "get_solo_shapes_meta",
    "register_solo_shapes",
    "ensure_solo_shapes_panoptic",
    "register_solo_shapes_panoptic",
]

register_solo_shapes(**BUILTIN_SHAPES)
register_solo_shapes_panoptic()
