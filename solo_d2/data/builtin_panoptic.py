"""Registration of the built-in panoptic shapes datasets, ``solo_shapes_panoptic_train`` (2000
images) and ``solo_shapes_panoptic_val`` (200): the quick-start shapes (3 thing classes, 192 px)
over sky, grass and wall regions (:mod:`solo_d2.shapes.panoptic`), in COCO panoptic
format. As ``solo_shapes_*``, nothing is generated at import: the first
``DatasetCatalog.get`` generates a split into the cache (:func:`~solo_d2.data.datasets_root`,
``<root>/<prefix>/{train,val}``), later calls only verify it.

The metadata is Detectron2's for panoptic datasets in the separated numbering (things 0..2,
stuff 1..3 after "things"), with ``evaluator_type`` "coco_panoptic_seg", the panoptic json and
PNG folder for PQ and the things' instance json for mask AP.
"""
import os
from typing import Any, Dict, List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..shapes import ShapesConfig, ensure_split
from ..shapes.panoptic import STUFF_CLASSES, PanopticShapesConfig, generate_panoptic_split
from .builtin import BUILTIN_SHAPES, DEFAULT_SPLITS, datasets_root
from .panoptic_datasets import load_coco_panoptic, panoptic_metadata, register_panoptic

__all__ = ["register_solo_shapes_panoptic", "ensure_solo_shapes_panoptic"]

# name -> (split_dir, PanopticShapesConfig)
_REGISTERED: Dict[str, Any] = {}


def ensure_solo_shapes_panoptic(name: str, progress: bool = True) -> str:
    """Generate (or verify) the files of the registered panoptic shapes dataset ``name``;
    return its split folder."""
    if name not in _REGISTERED:
        raise KeyError(f"{name!r} is not a panoptic shapes dataset; registered: "
                       f"{sorted(_REGISTERED)}")
    split_dir, cfg = _REGISTERED[name]
    return ensure_split(split_dir, cfg, progress=progress, desc=f"Generating {name}",
                        generate=generate_panoptic_split)


def _load(name: str) -> List[Dict[str, Any]]:
    d = ensure_solo_shapes_panoptic(name)
    return load_coco_panoptic(os.path.join(d, "panoptic.json"), os.path.join(d, "images"),
                              os.path.join(d, "panoptic"), name)


def register_solo_shapes_panoptic(
    root: Optional[str] = None,
    prefix: str = "solo_shapes_panoptic",
    num_train: int = DEFAULT_SPLITS["train"]["num_images"],
    num_val: int = DEFAULT_SPLITS["val"]["num_images"],
    seed: int = 0,
    stuff_classes=STUFF_CLASSES,
    **shape_kwargs: Any,
) -> List[str]:
    """Register ``{prefix}_train`` and ``{prefix}_val`` lazily; return the two names.
    ``shape_kwargs`` override :data:`~solo_d2.data.builtin.BUILTIN_SHAPES` (the things);
    names already registered are left as they are."""
    root = os.path.abspath(os.path.expanduser(root if root is not None else datasets_root()))
    settings = {**BUILTIN_SHAPES, **shape_kwargs}
    names = []
    for split, num, split_seed in (("train", num_train, seed), ("val", num_val, seed + 1)):
        name = f"{prefix}_{split}"
        names.append(name)
        if name in DatasetCatalog.list():
            continue
        cfg = PanopticShapesConfig(ShapesConfig(num_images=num, seed=split_seed, **settings),
                                   stuff_classes)
        split_dir = os.path.join(root, prefix, split)
        _REGISTERED[name] = (split_dir, cfg)
        if name in MetadataCatalog.list():
            MetadataCatalog.remove(name)
        register_panoptic(name, os.path.join(split_dir, "images"),
                          os.path.join(split_dir, "panoptic"),
                          os.path.join(split_dir, "panoptic.json"),
                          json_file=os.path.join(split_dir, "annotations.json"),
                          **panoptic_metadata(cfg.categories(), name))
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, lambda name=name: _load(name))
    return names
