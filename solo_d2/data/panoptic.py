"""Panoptic labels: which categories are things and which are stuff, in the model's numbering,
and the training targets of one image from its id-coded panoptic PNG.

The model numbers classes as Detectron2's Panoptic FPN does ("separated" format): things
0..T-1 (``MODEL.SOLO.NUM_CLASSES`` = T), stuff 1..S on the semantic branch, whose class 0 is
"any thing" (``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` = S + 1). Datasets number them in one of two
ways, both read from their metadata by :class:`PanopticLabels`:

* separated (Detectron2's ``*_panoptic_separated``, solo_d2's own panoptic datasets): the
  metadata's ``thing_dataset_id_to_contiguous_id`` gives 0..T-1 and
  ``stuff_dataset_id_to_contiguous_id`` 1..S (with the entry ``0: 0`` for "things");
* standard (Detectron2's ``coco_2017_*_panoptic``): one contiguous range over things and
  stuff together (COCO: 0..132); things keep their order, stuff theirs.
"""
import dataclasses
from typing import Any, Dict, Iterable, List, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from .bad_files import BadSampleError

__all__ = ["PanopticLabels", "rgb_to_id", "id_to_rgb", "panoptic_targets", "panoptic_to_semantic"]


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """COCO panoptic PNG pixels (H, W, 3) RGB -> segment ids (H, W) int64: R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Segment ids (H, W) -> (H, W, 3) uint8 RGB, the inverse of :func:`rgb_to_id`."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class PanopticLabels:
    """Things and stuff of a panoptic dataset in the model's numbering (see the module).

    Attributes:
        thing_ids: dataset category id of model thing label k at index k.
        stuff_ids: dataset category id of model stuff label s at index s - 1.
        thing_classes, stuff_classes: their names (stuff without "things").
        record_thing: a record's thing ``category_id`` (the dataset's contiguous id) -> label.
        record_stuff: a record's stuff ``category_id`` -> label (1..S).
    """

    thing_ids: Tuple[int, ...]
    stuff_ids: Tuple[int, ...]
    thing_classes: Tuple[str, ...]
    stuff_classes: Tuple[str, ...]
    record_thing: Dict[int, int]
    record_stuff: Dict[int, int]

    @classmethod
    def from_metadata(cls, meta: Any, name: str = "") -> "PanopticLabels":
        """From a dataset's metadata (``thing_dataset_id_to_contiguous_id``,
        ``stuff_dataset_id_to_contiguous_id``, ``thing_classes``, ``stuff_classes``)."""
        things = meta.get("thing_dataset_id_to_contiguous_id")
        stuff = meta.get("stuff_dataset_id_to_contiguous_id")
        if things is None or stuff is None:
            raise ValueError(
                f"dataset {name or meta.name!r} is not a panoptic dataset: its metadata has no "
                "thing_dataset_id_to_contiguous_id and stuff_dataset_id_to_contiguous_id "
                "(COCO panoptic: register it with DATASETS.REGISTER_COCO_PANOPTIC)"
            )
        # key 0 is the separated format's "things" entry: no panoptic category has id 0
        stuff = {k: v for k, v in stuff.items() if k != 0 and k not in things}
        thing_sorted = sorted(things.items(), key=lambda kv: kv[1])
        stuff_sorted = sorted(stuff.items(), key=lambda kv: kv[1])
        thing_names, stuff_names = meta.get("thing_classes", []), meta.get("stuff_classes", [])

        def name_of(names: Sequence[str], v: int, k: int) -> str:
            return names[v] if v < len(names) else str(k)

        return cls(
            thing_ids=tuple(k for k, _ in thing_sorted),
            stuff_ids=tuple(k for k, _ in stuff_sorted),
            thing_classes=tuple(name_of(thing_names, v, k) for k, v in thing_sorted),
            stuff_classes=tuple(name_of(stuff_names, v, k) for k, v in stuff_sorted),
            record_thing={v: i for i, (_, v) in enumerate(thing_sorted)},
            record_stuff={v: i + 1 for i, (_, v) in enumerate(stuff_sorted)},
        )

    @classmethod
    def from_datasets(cls, names: Iterable[str]) -> "PanopticLabels":
        """The labels shared by the registered datasets ``names`` (loaded when their metadata
        is only known after loading, as for DATASETS.REGISTER_COCO_PANOPTIC). Datasets with
        other things or stuff than the first are a ValueError naming both."""
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise ValueError("no dataset given to read panoptic labels from")
        found = []
        for name in names:
            meta = MetadataCatalog.get(name)
            if meta.get("thing_dataset_id_to_contiguous_id") is None:
                DatasetCatalog.get(name)  # solo_d2's panoptic loader sets the metadata
            found.append(cls.from_metadata(MetadataCatalog.get(name), name))
        for name, labels in zip(names[1:], found[1:]):
            if (labels.thing_ids, labels.stuff_ids) != (found[0].thing_ids, found[0].stuff_ids):
                raise ValueError(
                    f"datasets {names[0]!r} and {name!r} have different things or stuff "
                    f"({found[0].thing_classes}, {found[0].stuff_classes} vs "
                    f"{labels.thing_classes}, {labels.stuff_classes}): one model learns one set"
                )
        return found[0]

    @property
    def num_things(self) -> int:
        return len(self.thing_ids)

    @property
    def num_stuff(self) -> int:
        return len(self.stuff_ids)

    @property
    def sem_seg_classes(self) -> List[str]:
        """Names of the semantic branch's S + 1 classes: "things", then the stuff."""
        return ["things", *self.stuff_classes]

    def thing_dataset_id_to_label(self) -> Dict[int, int]:
        return {k: i for i, k in enumerate(self.thing_ids)}

    def stuff_dataset_id_to_label(self) -> Dict[int, int]:
        """Stuff dataset id -> label 1..S, and ``0: 0`` for "things" (Detectron2's separated
        metadata has the same entry)."""
        return {0: 0, **{k: i + 1 for i, k in enumerate(self.stuff_ids)}}

    def metadata(self) -> Dict[str, Any]:
        """Metadata fields in the model's numbering (separated format), e.g. for drawing."""
        return {
            "thing_classes": list(self.thing_classes),
            "stuff_classes": self.sem_seg_classes,
            "thing_dataset_id_to_contiguous_id": self.thing_dataset_id_to_label(),
            "stuff_dataset_id_to_contiguous_id": self.stuff_dataset_id_to_label(),
        }


def _segment_label(labels: PanopticLabels, seg: Dict[str, Any], file_name: str) -> int:
    table = labels.record_thing if seg["isthing"] else labels.record_stuff
    label = table.get(seg["category_id"])
    if label is None:
        kind = "thing" if seg["isthing"] else "stuff"
        raise BadSampleError(
            f"{file_name}: segment {seg.get('id')} has {kind} category_id {seg['category_id']}, "
            f"not one of the dataset's {kind} categories"
        )
    return label


def _check_segment_ids(ids: np.ndarray, segments_info: Sequence[Dict], file_name: str) -> None:
    known = {int(s["id"]) for s in segments_info}
    unknown = [int(i) for i in np.unique(ids) if i != 0 and int(i) not in known]
    if unknown:
        raise BadSampleError(
            f"{file_name}: segment ids {unknown[:5]} of its panoptic PNG are not in its "
            f"segments_info (ids listed there: {sorted(known)[:10]})"
        )


def panoptic_targets(
    ids: np.ndarray,
    segments_info: Sequence[Dict[str, Any]],
    labels: PanopticLabels,
    ignore_value: int = 255,
    file_name: str = "",
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training targets of one image from its segment-id map.

    Args:
        ids: (H, W) segment ids (:func:`rgb_to_id` of the PNG, after augmentation); 0 is
            unlabeled.
        segments_info: the record's segments: "id", "category_id" (the dataset's contiguous
            id), "isthing", optional "iscrowd".
        labels: the dataset's :class:`PanopticLabels`.
        ignore_value: semantic label of unlabeled pixels (MODEL.SEM_SEG_HEAD.IGNORE_VALUE).
        file_name: named by the errors.
    Returns:
        masks (K, H, W) bool of the non-crowd things left with pixels, their labels (K,)
        int64, and the semantic map (H, W) int64: 0 on every thing pixel (crowd included, as
        Detectron2's separated format), 1..S on stuff, ``ignore_value`` elsewhere.
    Raises:
        BadSampleError: ids of the map missing from ``segments_info``, or a category the
            dataset does not have (the trainer skips and counts the file).
    """
    _check_segment_ids(ids, segments_info, file_name)
    sem = np.full(ids.shape, ignore_value, dtype=np.int64)
    masks, classes = [], []
    for seg in segments_info:
        label = _segment_label(labels, seg, file_name)
        mask = ids == seg["id"]
        if not seg["isthing"]:
            sem[mask] = label
            continue
        sem[mask] = 0
        if not seg.get("iscrowd", 0) and mask.any():
            masks.append(mask)
            classes.append(label)
    masks_arr = np.stack(masks) if masks else np.zeros((0, *ids.shape), dtype=bool)
    return masks_arr, np.asarray(classes, dtype=np.int64), sem


def panoptic_to_semantic(
    ids: np.ndarray, segments_info: Sequence[Dict[str, Any]], labels: PanopticLabels,
    ignore_value: int = 255, file_name: str = "",
) -> np.ndarray:
    """The semantic map (H, W) of :func:`panoptic_targets` alone (the stuff evaluation's
    ground truth)."""
    return panoptic_targets(ids, segments_info, labels, ignore_value, file_name)[2]
