"""Class counts of datasets against ``MODEL.SOLO.NUM_CLASSES``, checked before training."""
from typing import Iterable

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["check_dataset_classes"]


def check_dataset_classes(
    names: Iterable[str], num_classes: int, *, load: bool = False,
    key: str = "MODEL.SOLO.NUM_CLASSES",
) -> None:
    """Raise ValueError naming both numbers when a dataset's ``thing_classes`` count differs
    from ``num_classes``.

    Args:
        names: registered dataset names.
        num_classes: the model's class count (``MODEL.SOLO.NUM_CLASSES``).
        load: load a dataset whose metadata has no ``thing_classes`` yet: datasets registered
            with ``register_coco_instances`` learn their class names only when loaded.
            Without it such datasets are not checked.
        key: the setting that gives ``num_classes``, named by the error (a LazyConfig's
            ``model.num_classes``).
    """
    for name in names:
        meta = MetadataCatalog.get(name)
        classes = meta.get("thing_classes")
        if classes is None and load:
            DatasetCatalog.get(name)  # Detectron2's loaders set thing_classes as they load
            classes = meta.get("thing_classes")
        if classes is not None and len(classes) != num_classes:
            raise ValueError(
                f"Dataset {name!r} has {len(classes)} classes but {key} is "
                f"{num_classes}; set {key} {len(classes)}"
            )
