"""The bad-input corpus: a COCO-format dataset whose images are the cases users' own data
brings, each with the behaviour solo_d2 documents for it (see ``CASES``).

Images are written as files and read back through Detectron2's ``load_coco_json`` and
solo_d2's mapper, as ``train_net.py`` reads a user's dataset.
"""
import json
import os
from typing import Dict, List

import cv2
import numpy as np

SIZE = 128
CLASSES = ["rect", "ellipse", "triangle"]

#: case -> what happens to it in training
CASES: Dict[str, str] = {
    "objects": "trains: category loss on every cell, dice loss on positive cells",
    "empty": "no annotations: trains as a negative (category loss only, no mask loss)",
    "crowd_only": "only iscrowd=1 annotations, which are ignored: trains as a negative",
    "degenerate_polygon": "a polygon of < 3 points is dropped when Detectron2 loads the json "
    "(with a warning); the image's valid object trains",
    "one_pixel": "a 1x1 px object trains; its mask vanishes below the mask resolution, so "
    "(DROP_VANISHED_TARGETS) it is no positive: the image trains as a negative",
    "many_instances": "500 instances in one image train",
    "gray16": "16-bit grayscale PNG: scaled to 8 bits (v / 257), not read as white",
    "color16": "16-bit colour PNG: scaled to 8 bits (v / 257)",
    "gray8": "8-bit grayscale PNG: replicated to three channels",
    "rgba": "RGBA PNG: alpha dropped",
}


def _polygon(x0: float, y0: float, x1: float, y1: float) -> List[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def _ann(image_id: int, cls: int, box, iscrowd: int = 0, segmentation=None) -> dict:
    x0, y0, x1, y1 = box
    return {
        "image_id": image_id,
        "category_id": cls + 1,
        "segmentation": segmentation if segmentation is not None else [_polygon(*box)],
        "area": float((x1 - x0) * (y1 - y0)),
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "iscrowd": iscrowd,
    }


def _rgb_image(rng: np.random.Generator) -> np.ndarray:
    img = (rng.random((SIZE, SIZE, 3)) * 60).astype(np.uint8)
    img[30:90, 20:80] = (200, 60, 60)
    return img


def write_corpus(root: str, cases=tuple(CASES)) -> Dict[str, object]:
    """Write the chosen ``cases`` as ``root/corpus.json`` + ``root/images/<case>.png``.

    Returns ``{"json": path, "images": folder, "ids": {case: image id}}``.
    """
    rng = np.random.default_rng(0)
    img_dir = os.path.join(root, "images")
    os.makedirs(img_dir, exist_ok=True)
    images, anns, ids = [], [], {}
    for image_id, case in enumerate(cases, start=1):
        ids[case] = image_id
        img = _rgb_image(rng)
        objects = [_ann(image_id, 0, (20, 30, 80, 90))]
        if case == "empty":
            objects = []
        elif case == "crowd_only":
            objects = [_ann(image_id, 1, (20, 30, 80, 90), iscrowd=1)]
        elif case == "degenerate_polygon":
            objects.append(_ann(image_id, 2, (5, 5, 15, 15), segmentation=[[5.0, 5.0, 15.0, 5.0]]))
        elif case == "one_pixel":
            objects = [_ann(image_id, 2, (100, 100, 101, 101))]
        elif case == "many_instances":
            objects = [
                _ann(image_id, k % 3, (x, y, x + 6, y + 6))
                for k, (y, x) in enumerate((y, x) for y in range(0, 125, 5) for x in range(0, 100, 5))
            ]
        path = os.path.join(img_dir, f"{case}.png")
        if case == "gray16":
            cv2.imwrite(path, img[:, :, 0].astype(np.uint16) * 257)
        elif case == "color16":
            cv2.imwrite(path, img[:, :, ::-1].astype(np.uint16) * 257)
        elif case == "gray8":
            cv2.imwrite(path, img[:, :, 0])
        elif case == "rgba":
            cv2.imwrite(path, np.dstack([img[:, :, ::-1], np.full((SIZE, SIZE), 128, np.uint8)]))
        else:
            cv2.imwrite(path, img[:, :, ::-1])
        images.append({"id": image_id, "file_name": f"{case}.png", "height": SIZE, "width": SIZE})
        anns.extend(objects)
    for k, a in enumerate(anns, start=1):
        a["id"] = k
    json_file = os.path.join(root, "corpus.json")
    cats = [{"id": c + 1, "name": n} for c, n in enumerate(CLASSES)]
    with open(json_file, "w") as f:
        json.dump({"images": images, "annotations": anns, "categories": cats}, f)
    return {"json": json_file, "images": img_dir, "ids": ids}
