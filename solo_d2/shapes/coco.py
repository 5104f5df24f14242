"""Binary masks as COCO annotations: pixel-edge polygons, bbox, area, and the json file.

Masks are stored as COCO polygons traced along pixel edges (:func:`mask_to_polygons`); a
mask with holes (a ring, or a shape with a smaller shape on top of it) becomes a single
"keyhole" polygon whose zero-width bridge edges cancel out when pycocotools rasterises it,
so ``annToMask`` gives back the mask. ``bbox`` and ``area`` come from the mask itself
(:func:`mask_annotation`). Used by the shapes dataset and by any code that writes a COCO
json from masks (e.g. the tests' toy dataset).
"""
import json
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

__all__ = ["mask_to_polygons", "mask_annotation", "coco_categories", "write_coco_json"]


def _merge_hole(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Join ``hole`` into ``outer`` (both (N, 2)) by a zero-width bridge between nearest points."""
    d = ((outer[:, None, :].astype(np.int64) - hole[None, :, :]) ** 2).sum(-1)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    return np.concatenate([outer[: i + 1], hole[j:], hole[: j + 1], outer[i:]], axis=0)


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons that trace the pixel edges of a binary (H, W) mask.

    Pixel ``(x, y)`` covers ``[x, x + 1] x [y, y + 1]``, the convention pycocotools uses when
    it rasterises polygons (a pixel is in when its centre is), so ``annToMask`` of the
    result gives back ``mask``: where the tracer cuts a corner diagonally the outline moves
    by at most a quarter pixel, never across a pixel centre. The mask is drawn on a doubled lattice (pixel centres at even indices,
    pixel edges and corners at odd ones) and traced there with ``cv2.findContours``, so
    the contour runs along pixel edges instead of through boundary pixel centres.

    One polygon per 8-connected component; holes are merged into their component's polygon
    through zero-width bridges (traversed once each way, they cancel when rasterised).
    Coordinates lie in ``[0, W]`` x ``[0, H]``.

    Returns:
        list of flat ``[x0, y0, x1, y1, ...]`` lists, each of at least 8 numbers.
    """
    m = (np.asarray(mask) != 0).view(np.uint8)
    x0, y0, w, h = cv2.boundingRect(m)
    if w == 0 or h == 0:
        return []
    crop = m[y0 : y0 + h, x0 : x0 + w]
    # pixel x's centre sits at lattice index 2x + 2, its edges at 2x + 1 and 2x + 3
    lattice = np.zeros((2 * h + 4, 2 * w + 4), dtype=np.uint8)
    lattice[2 : 2 * h + 1 : 2, 2 : 2 * w + 1 : 2] = crop
    lattice = cv2.dilate(lattice, np.ones((3, 3), np.uint8))  # each pixel -> closed square
    contours, hierarchy = cv2.findContours(lattice, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hierarchy = hierarchy.reshape(-1, 4)  # next, prev, first_child, parent
    offset = np.array([x0, y0], dtype=np.float64)
    polygons: List[List[float]] = []
    for k, contour in enumerate(contours):
        if hierarchy[k, 3] != -1:  # a hole: merged into its parent below
            continue
        poly = contour.reshape(-1, 2)
        child = hierarchy[k, 2]
        while child != -1:
            poly = _merge_hole(poly, contours[child].reshape(-1, 2))
            child = hierarchy[child, 0]
        if len(poly) < 3:
            continue
        # lattice index 2x + 1 is the left edge of pixel x: index i is coordinate (i - 1) / 2
        coords = (poly.astype(np.float64) - 1.0) / 2.0 + offset
        # integral values as int: shorter json, same numbers
        polygons.append([int(v) if v.is_integer() else v for v in coords.reshape(-1).tolist()])
    return polygons


def mask_annotation(
    mask: np.ndarray, category_id: int, image_id: int, ann_id: int
) -> Optional[Dict[str, Any]]:
    """The COCO annotation of one instance given by its binary (H, W) mask.

    ``segmentation`` holds :func:`mask_to_polygons` of the mask, ``bbox`` its tight
    ``[x0, y0, w, h]`` box in pixels and ``area`` its pixel count (all ints); ``iscrowd`` is 0.
    Returns None for a mask without pixels (nothing to annotate).
    """
    polygons = mask_to_polygons(mask)
    if not polygons:
        return None
    m = (np.asarray(mask) != 0).view(np.uint8)
    x0, y0, bw, bh = cv2.boundingRect(m)
    return {
        "id": int(ann_id),
        "image_id": int(image_id),
        "category_id": int(category_id),
        "segmentation": polygons,
        "area": int(cv2.countNonZero(m)),
        "bbox": [int(x0), int(y0), int(bw), int(bh)],
        "iscrowd": 0,
    }


def coco_categories(names: Sequence[str], supercategory: str = "shape") -> List[Dict[str, Any]]:
    """COCO ``categories`` for class ``names``: the category id of ``names[k]`` is ``k + 1``."""
    return [
        {"id": k + 1, "name": name, "supercategory": supercategory} for k, name in enumerate(names)
    ]


def write_coco_json(path: str, coco: Dict[str, Any]) -> None:
    """Write the COCO dict ``coco`` (images, annotations, categories, ...) to ``path`` as
    compact json (no spaces after separators; keys in the dict's order)."""
    with open(path, "w") as f:
        f.write(json.dumps(coco, separators=(",", ":")))  # dumps: C encoder, dump: Python
