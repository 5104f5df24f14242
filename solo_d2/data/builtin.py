"""Registration of the built-in ``solo_shapes`` datasets with Detectron2's catalogs.

``import solo_d2`` registers ``solo_shapes_train`` (2000 images) and ``solo_shapes_val``
(200 images), generated with :data:`BUILTIN_SHAPES`. Nothing is generated at import time:
the first ``DatasetCatalog.get(name)`` generates the split (a few tens of seconds, with a
progress bar) into the cache and later calls only verify it. The cache root is, in order of
precedence, the ``root`` argument of :func:`register_solo_shapes`, ``$SOLO_D2_DATASETS``,
``$XDG_CACHE_HOME/solo_d2/datasets``, ``~/.cache/solo_d2/datasets``; splits live in
``<root>/solo_shapes/{train,val}``.

The metadata carries ``json_file``/``image_root``/``evaluator_type="coco"``, so
Detectron2's ``COCOEvaluator`` works on them once the split exists (Detectron2's
``DefaultTrainer.test`` builds the test loader, which generates it, before the evaluator;
elsewhere call :func:`ensure_solo_shapes` first).
"""
import os
from typing import Any, Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from ..shapes import CLASSES, ShapesConfig, ensure_split

__all__ = [
    "BUILTIN_SHAPES",
    "DEFAULT_SPLITS",
    "datasets_root",
    "register_solo_shapes",
    "ensure_solo_shapes",
    "get_solo_shapes_meta",
]

#: Default (num_images, seed) of each split of the built-in dataset.
DEFAULT_SPLITS: Dict[str, Dict[str, int]] = {
    "train": {"num_images": 2000, "seed": 0},
    "val": {"num_images": 200, "seed": 1},
}

#: Generator settings of the built-in ``solo_shapes``: made to show in minutes on a CPU that
#: training and evaluation work and what SOLO's masks look like, while keeping what makes
#: instance segmentation: several objects of several classes per image, touching and
#: overlapping, some images empty (docs/quick_start.md).
BUILTIN_SHAPES: Dict[str, Any] = {
    "image_size": 192,
    "min_size": 32.0,
    "max_size": 96.0,
    "max_instances": 6,
    "empty_prob": 0.1,
    "classes": ("circle", "triangle", "rectangle"),
    "style": "plain",
}

# name -> (split_dir, ShapesConfig) of the datasets registered by this module
_REGISTERED: Dict[str, Any] = {}


def datasets_root() -> str:
    """Where generated datasets are cached: ``$SOLO_D2_DATASETS``, else
    ``$XDG_CACHE_HOME/solo_d2/datasets``, else ``~/.cache/solo_d2/datasets``."""
    root = os.environ.get("SOLO_D2_DATASETS")
    if root:
        return os.path.expanduser(root)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "solo_d2", "datasets")


def get_solo_shapes_meta(classes: Sequence[str] = CLASSES) -> Dict[str, Any]:
    """Metadata of a shapes split drawing ``classes``: class names and the COCO-id ->
    contiguous-id map."""
    return {
        "thing_classes": list(classes),
        "thing_dataset_id_to_contiguous_id": {k + 1: k for k in range(len(classes))},
    }


def ensure_solo_shapes(name: str, progress: bool = True) -> str:
    """Generate (or verify) the files of registered shapes dataset ``name``; return its json path."""
    if name not in _REGISTERED:
        raise KeyError(
            f"{name!r} is not a shapes dataset registered by register_solo_shapes; "
            f"registered: {sorted(_REGISTERED)}"
        )
    split_dir, cfg = _REGISTERED[name]
    ensure_split(split_dir, cfg, progress=progress, desc=f"Generating {name}")
    return os.path.join(split_dir, "annotations.json")


def _load(name: str) -> List[Dict[str, Any]]:
    json_file = ensure_solo_shapes(name)
    split_dir = os.path.dirname(json_file)
    return load_coco_json(json_file, os.path.join(split_dir, "images"), name)


def register_solo_shapes(
    root: Optional[str] = None,
    prefix: str = "solo_shapes",
    num_train: int = DEFAULT_SPLITS["train"]["num_images"],
    num_val: int = DEFAULT_SPLITS["val"]["num_images"],
    seed: int = 0,
    **generator_kwargs: Any,
) -> List[str]:
    """Register ``{prefix}_train`` and ``{prefix}_val`` lazily; return the two names.

    Args:
        root: cache root (default :func:`datasets_root`); files go to ``root/prefix/<split>``.
        prefix: dataset name prefix and folder name.
        num_train, num_val: images per split.
        seed: train uses ``seed``, val ``seed + 1``.
        generator_kwargs: other :class:`~solo_d2.shapes.ShapesConfig` fields
            (``image_size``, ``min_size``, ``max_size``, ``max_instances``, ``empty_prob``,
            ``min_visible_area``, ``classes``, ``style``).

    Names already in ``DatasetCatalog`` are left as they are, so calling this twice is safe.
    Nothing is generated here; the first ``DatasetCatalog.get`` generates the split.
    """
    root = os.path.abspath(os.path.expanduser(root if root is not None else datasets_root()))
    names = []
    for split, num, split_seed in (("train", num_train, seed), ("val", num_val, seed + 1)):
        name = f"{prefix}_{split}"
        names.append(name)
        if name in DatasetCatalog.list():
            continue
        cfg = ShapesConfig(num_images=num, seed=split_seed, **generator_kwargs)
        split_dir = os.path.join(root, prefix, split)
        _REGISTERED[name] = (split_dir, cfg)
        DatasetCatalog.register(name, lambda name=name: _load(name))
        if name in MetadataCatalog.list():  # stale metadata of a removed dataset of that name
            MetadataCatalog.remove(name)
        MetadataCatalog.get(name).set(
            json_file=os.path.join(split_dir, "annotations.json"),
            image_root=os.path.join(split_dir, "images"),
            evaluator_type="coco",
            **get_solo_shapes_meta(cfg.classes),
        )
    return names
