"""COCO panoptic datasets: loading a panoptic json (things and stuff from the categories'
``isthing``), registering one (:func:`register_panoptic`), and the instance annotations of a
panoptic-only dataset derived from its PNGs (for mask AP).

One's own COCO panoptic data, named from the command line (``DATASETS.REGISTER_COCO_PANOPTIC``,
:mod:`solo_d2.data.cfg_datasets`), is registered here. Such a dataset's metadata follows Detectron2's separated format (things
0..T-1, stuff 1..S, see :mod:`solo_d2.data.panoptic`) and is set when it is first loaded.
"""
import json
import logging
import os
from typing import Any, Dict, List, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager

from .image_io import read_image
from .panoptic import PanopticLabels, rgb_to_id

__all__ = [
    "load_coco_panoptic",
    "panoptic_metadata",
    "register_panoptic",
    "write_instances_json",
]

logger = logging.getLogger(__name__)



def panoptic_metadata(categories: Sequence[Dict[str, Any]], source: str) -> Dict[str, Any]:
    """Separated-format metadata (things 0..T-1, stuff 1..S after "things" 0) of COCO
    panoptic ``categories``, in their order. A category without a 0/1 ``isthing`` is a
    ValueError naming it and ``source``."""
    things, stuff = [], []
    for cat in categories:
        if cat.get("isthing") not in (0, 1) or "id" not in cat:
            raise ValueError(
                f"{source}: category {cat.get('id', '(no id)')} ({cat.get('name', '?')}) has "
                f"isthing {cat.get('isthing', '(missing)')!r}; COCO panoptic categories need an "
                "id and isthing 1 (things) or 0 (stuff)"
            )
        (things if cat["isthing"] else stuff).append(cat)
    if not things:
        raise ValueError(f"{source}: no category has isthing 1; panoptic training needs things")
    colors = {c["id"]: list(c["color"]) for c in categories if "color" in c}
    meta = {
        "thing_classes": [c["name"] for c in things],
        "stuff_classes": ["things"] + [c["name"] for c in stuff],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(things)},
        "stuff_dataset_id_to_contiguous_id": {
            0: 0, **{c["id"]: i + 1 for i, c in enumerate(stuff)}},
    }
    if len(colors) == len(categories):
        meta["thing_colors"] = [colors[c["id"]] for c in things]
        meta["stuff_colors"] = [[82, 18, 128]] + [colors[c["id"]] for c in stuff]
    return meta


def _set_metadata(name: str, meta: Dict[str, Any]) -> None:
    current = MetadataCatalog.get(name)
    for key, value in meta.items():
        if current.get(key) is None:
            current.set(**{key: value})
        elif current.get(key) != value:
            raise ValueError(f"dataset {name!r}: its json now gives another {key} than when it "
                             "was first loaded; register the new data under a new name")


def load_coco_panoptic(json_file: str, image_root: str, panoptic_root: str,
                       name: str) -> List[Dict[str, Any]]:
    """Dataset dicts of a COCO panoptic json, as Detectron2's ``load_coco_panoptic_json``
    gives them (``file_name``, ``image_id``, ``pan_seg_file_name``, ``segments_info`` with
    contiguous ``category_id`` and ``isthing``) plus ``height`` and ``width``; image file
    names come from the json's ``images`` (any extension). Sets the dataset's metadata
    (:func:`panoptic_metadata`). Images without an entry in ``annotations`` are left out
    (logged); a segment of an unknown category or an annotation of an unknown image is a
    ValueError naming it."""
    with PathManager.open(json_file) as f:
        data = json.load(f)
    meta = panoptic_metadata(data.get("categories", []), json_file)
    _set_metadata(name, meta)
    things = meta["thing_dataset_id_to_contiguous_id"]
    stuff = meta["stuff_dataset_id_to_contiguous_id"]
    images = {img["id"]: img for img in data.get("images", [])}
    records = []
    for ann in data.get("annotations", []):
        img = images.get(ann["image_id"])
        if img is None:
            raise ValueError(f"{json_file}: annotation {ann.get('file_name')} is of image_id "
                             f"{ann['image_id']}, which 'images' does not list")
        segments = []
        for seg in ann["segments_info"]:
            cat = seg["category_id"]
            if cat not in things and (cat not in stuff or cat == 0):
                raise ValueError(f"{json_file}: segment {seg.get('id')} of {ann['file_name']} "
                                 f"has category_id {cat}, which 'categories' does not list")
            isthing = cat in things
            segments.append({**seg, "category_id": (things if isthing else stuff)[cat],
                             "isthing": isthing})
        records.append({
            "file_name": os.path.join(image_root, img["file_name"]),
            "image_id": img["id"],
            "height": img["height"],
            "width": img["width"],
            "pan_seg_file_name": os.path.join(panoptic_root, ann["file_name"]),
            "segments_info": segments,
        })
    missing = len(images) - len(records)
    if missing > 0:
        logger.warning(f"{name}: {missing} images of {json_file} have no panoptic annotation "
                       "and are left out")
    logger.info(f"Loaded {len(records)} images in COCO panoptic format from {json_file}")
    return records


def register_panoptic(name: str, image_root: str, panoptic_root: str, panoptic_json: str,
                      **metadata: Any) -> None:
    """Register a COCO panoptic dataset (loaded by :func:`load_coco_panoptic`) with
    Detectron2's catalogs and the metadata Detectron2's panoptic evaluation reads
    (``evaluator_type`` "coco_panoptic_seg", ``panoptic_json``, ``panoptic_root``,
    ``ignore_label`` 255); ``metadata`` adds more (e.g. an instances ``json_file``)."""
    DatasetCatalog.register(
        name, lambda: load_coco_panoptic(panoptic_json, image_root, panoptic_root, name))
    MetadataCatalog.get(name).set(
        image_root=image_root, panoptic_root=panoptic_root, panoptic_json=panoptic_json,
        evaluator_type="coco_panoptic_seg", ignore_label=255, label_divisor=1000, **metadata)


def write_instances_json(dataset_name: str, path: str) -> str:
    """Write the COCO instance annotations of a panoptic dataset's things, derived from its
    PNGs (RLE masks, tight boxes, areas, ``iscrowd`` from ``segments_info``; dataset
    category ids), to ``path``, for Detectron2's COCOEvaluator. Returns ``path``."""
    import pycocotools.mask as mask_util

    records = DatasetCatalog.get(dataset_name)
    labels = PanopticLabels.from_metadata(MetadataCatalog.get(dataset_name), dataset_name)
    images, annotations = [], []
    for rec in records:
        ids = rgb_to_id(read_image(rec["pan_seg_file_name"], format="RGB"))
        h, w = ids.shape
        images.append({"id": rec["image_id"], "file_name": os.path.basename(rec["file_name"]),
                       "height": h, "width": w})
        for seg in rec["segments_info"]:
            if not seg["isthing"]:
                continue
            mask = np.asfortranarray(ids == seg["id"], dtype=np.uint8)
            if not mask.any():
                continue
            rle = mask_util.encode(mask)
            rle["counts"] = rle["counts"].decode("ascii")
            annotations.append({
                "id": len(annotations) + 1, "image_id": rec["image_id"],
                "category_id": labels.thing_ids[labels.record_thing[seg["category_id"]]],
                "segmentation": rle, "area": int(mask.sum()),
                "bbox": [float(x) for x in mask_util.toBbox(rle)],
                "iscrowd": int(seg.get("iscrowd", 0)),
            })
    categories = [{"id": k, "name": n} for k, n in zip(labels.thing_ids, labels.thing_classes)]
    PathManager.mkdirs(os.path.dirname(os.path.abspath(path)))
    tmp = path + ".tmp"
    with PathManager.open(tmp, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    os.replace(tmp, path)
    logger.info(f"{dataset_name}: {len(annotations)} thing annotations of {len(images)} images "
                f"derived from its panoptic PNGs -> {path}")
    return path
