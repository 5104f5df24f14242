"""Class counts of datasets against ``MODEL.SOLO.NUM_CLASSES`` (things) and, for panoptic
models, ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` (stuff + 1), checked before training."""
from typing import Iterable, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

__all__ = ["check_dataset_classes", "check_stuff_classes"]


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
        if meta.get("thing_classes") is None and load:
            DatasetCatalog.get(name)  # Detectron2's loaders set thing_classes as they load
        count = _thing_count(meta)
        if count is not None and count != num_classes:
            raise ValueError(
                f"Dataset {name!r} has {count} classes but {key} is "
                f"{num_classes}; set {key} {count}"
            )


def _thing_count(meta) -> Optional[int]:
    """The things a dataset has: its thing id map's size where it has one (Detectron2's
    standard COCO panoptic metadata names things and stuff in thing_classes), else the
    number of thing_classes; None when neither is known yet."""
    ids = meta.get("thing_dataset_id_to_contiguous_id")
    if ids is not None:
        return len(ids)
    classes = meta.get("thing_classes")
    return None if classes is None else len(classes)


def check_stuff_classes(
    names: Iterable[str], num_classes: int, *, load: bool = False,
    key: str = "MODEL.SEM_SEG_HEAD.NUM_CLASSES",
) -> None:
    """Raise ValueError naming both numbers when a panoptic dataset's stuff classes + 1
    ("things", as Panoptic FPN counts them) differ from the semantic branch's ``num_classes``.
    Datasets that are not panoptic (no stuff id map) are not checked; ``load`` as
    :func:`check_dataset_classes`."""
    from .panoptic import PanopticLabels

    for name in names:
        meta = MetadataCatalog.get(name)
        if meta.get("stuff_dataset_id_to_contiguous_id") is None and load \
                and meta.get("evaluator_type") == "coco_panoptic_seg":
            DatasetCatalog.get(name)  # solo_d2's panoptic loader sets the id maps
        if meta.get("stuff_dataset_id_to_contiguous_id") is None:
            continue
        count = PanopticLabels.from_metadata(meta, name).num_stuff + 1
        if count != num_classes:
            raise ValueError(
                f"Dataset {name!r} has {count - 1} stuff classes, {count} with \"things\", but "
                f"{key} is {num_classes}; set {key} {count}"
            )
