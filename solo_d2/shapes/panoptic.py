"""Procedural panoptic "shapes": the instance shapes (things) over textured stuff regions, written
in COCO panoptic format.

Each image is :func:`~solo_d2.shapes.render_image`'s (plain style) with every pixel no
shape covers repainted by the stuff region it falls in: 1 to 3 regions (a wavy horizon splits
the image; a band may cross it) of the classes in :data:`STUFF_CLASSES`, each with its own
texture (a smooth sky gradient, noisy grass, a brick wall). A split directory holds::

    images/000000.png ...        the images
    panoptic/000000.png ...      id-coded segments (id = R + 256 G + 256^2 B; 0 unlabeled)
    panoptic.json                COCO panoptic: images, annotations (segments_info), categories
                                 with isthing (things 1..T, stuff T+1..T+S)
    annotations.json             COCO instances of the things (for mask AP)
    manifest.json                written last (see .cache)

Every file is a pure function of the settings (:class:`PanopticShapesConfig`).
"""
import dataclasses
import hashlib
import json
import math
import os
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np

from .coco import coco_categories, mask_annotation, write_coco_json
from .render import GENERATOR_VERSION, ShapesConfig, render_image

__all__ = ["STUFF_CLASSES", "PanopticShapesConfig", "render_panoptic", "generate_panoptic_split"]

#: stuff classes, each drawn with its own texture
STUFF_CLASSES: Tuple[str, ...] = ("sky", "grass", "wall")

#: bump whenever the stuff rendering changes (cached splits are then regenerated)
PANOPTIC_VERSION = 1


@dataclasses.dataclass(frozen=True)
class PanopticShapesConfig:
    """Settings of a panoptic split: the shapes' (:class:`ShapesConfig`, plain style) and the
    stuff classes drawn (a subset of :data:`STUFF_CLASSES`, in that order)."""

    shapes: ShapesConfig
    stuff_classes: Tuple[str, ...] = STUFF_CLASSES

    def __post_init__(self) -> None:
        stuff = tuple(self.stuff_classes)
        object.__setattr__(self, "stuff_classes", stuff)
        if len(stuff) < 2 or any(s not in STUFF_CLASSES for s in stuff) \
                or len(set(stuff)) != len(stuff):
            raise ValueError(f"stuff_classes must be 2 or more distinct names out of "
                             f"{STUFF_CLASSES}, got {stuff}")
        if self.shapes.style != "plain":
            raise ValueError("panoptic shapes are drawn in the 'plain' style (the stuff "
                             f"textures are the clutter), got {self.shapes.style!r}")

    @property
    def num_images(self) -> int:
        return self.shapes.num_images

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": "panoptic", "panoptic_version": PANOPTIC_VERSION,
                "shapes": self.shapes.to_dict(), "stuff_classes": list(self.stuff_classes)}

    def categories(self) -> List[Dict[str, Any]]:
        """COCO panoptic categories: things 1..T, stuff T+1..T+S, with isthing."""
        things = [{**c, "isthing": 1} for c in coco_categories(self.shapes.classes)]
        t = len(things)
        stuff = [{"id": t + 1 + k, "name": s, "supercategory": "stuff", "isthing": 0}
                 for k, s in enumerate(self.stuff_classes)]
        return things + stuff


def _stuff_layout(rng: np.random.Generator, h: int, w: int, num: int) -> np.ndarray:
    """(H, W) region classes in 0..num-1: a wavy horizon between two classes, sometimes a
    vertical band of a third, sometimes one class only."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.15:
        return np.full((h, w), int(rng.integers(0, num)), dtype=np.int64)
    top, bottom = (int(c) for c in rng.choice(num, size=2, replace=False))
    y0 = rng.uniform(0.3, 0.7) * h
    slope = rng.uniform(-0.3, 0.3)
    amp, period, phase = rng.uniform(0, 0.06 * h), rng.uniform(0.4, 1.2) * w, rng.uniform(0, 6.3)
    horizon = y0 + slope * (xs - w / 2) + amp * np.sin(2 * math.pi * xs / period + phase)
    layout = np.where(ys < horizon, top, bottom).astype(np.int64)
    if num > 2 and rng.random() < 0.5:
        third = int(next(c for c in rng.permutation(num) if c not in (top, bottom)))
        x0 = rng.uniform(0, 0.7) * w
        width = rng.uniform(0.15, 0.35) * w
        layout[(xs >= x0) & (xs < x0 + width) & (ys >= rng.uniform(0, 0.5) * h)] = third
    return layout


def _texture(rng: np.random.Generator, name: str, h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32 BGR texture of stuff class ``name`` over the whole image."""
    ys = np.arange(h, dtype=np.float32)[:, None, None] / max(h - 1, 1)
    if name == "sky":
        top = np.array([rng.uniform(200, 250), rng.uniform(150, 200), rng.uniform(90, 140)])
        low = np.array([rng.uniform(230, 255), rng.uniform(220, 250), rng.uniform(200, 240)])
        img = top * (1 - ys) + low * ys + rng.normal(0, 2, (h, w, 3))
    elif name == "grass":
        base = np.array([rng.uniform(30, 70), rng.uniform(110, 170), rng.uniform(30, 70)])
        noise = rng.normal(0, 28, (h, w, 1)).astype(np.float32)
        noise = cv2.blur(noise, (1, 5))[:, :, None]  # short vertical blades
        img = base + noise * np.array([0.5, 1.0, 0.5]) + rng.normal(0, 6, (h, w, 3))
    else:  # wall: bricks in offset rows, light mortar
        bh, bw = int(rng.integers(8, 13)), int(rng.integers(16, 25))
        base = np.array([rng.uniform(50, 90), rng.uniform(60, 100), rng.uniform(140, 190)])
        rows = np.arange(h)[:, None] // bh
        cols = (np.arange(w)[None, :] + (rows % 2) * (bw // 2)) // bw
        shade = rng.uniform(-25, 25, (int(rows.max()) + 1, w // bw + 3))[rows, cols]
        img = np.broadcast_to(base, (h, w, 3)) + shade[:, :, None]
        mortar = (np.arange(h)[:, None] % bh == 0) | \
            ((np.arange(w)[None, :] + (rows % 2) * (bw // 2)) % bw == 0)
        img = np.where(mortar[:, :, None], 200.0, img) + rng.normal(0, 4, (h, w, 3))
    return np.asarray(img, dtype=np.float32)


def render_panoptic(index: int, cfg: PanopticShapesConfig
                    ) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]], np.ndarray]:
    """Image ``index`` of the split: ``(image (H, W, 3) uint8 BGR, instances [(category_id,
    visible mask)] as render_image gives them, stuff (H, W) int64)``; ``stuff`` is the stuff
    category id (T+1..T+S) of every pixel no instance covers, 0 under instances."""
    image, instances = render_image(index, cfg.shapes)
    h, w = image.shape[:2]
    rng = np.random.default_rng(np.random.SeedSequence([cfg.shapes.seed, index, 7]))
    layout = _stuff_layout(rng, h, w, len(cfg.stuff_classes))
    covered = np.zeros((h, w), dtype=bool)
    for _, mask in instances:
        covered |= mask.astype(bool)
    out = image.astype(np.float32)
    for k, name in enumerate(cfg.stuff_classes):
        region = (layout == k) & ~covered
        if region.any():
            out[region] = _texture(rng, name, h, w)[region]
    stuff = np.where(covered, 0, layout + len(cfg.shapes.classes) + 1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8), instances, stuff


def _id_png(ids: np.ndarray) -> bytes:
    """Segment ids (H, W) as a COCO panoptic PNG (RGB; cv2 writes BGR)."""
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    if not ok:  # pragma: no cover
        raise RuntimeError("cv2 could not encode a panoptic PNG")
    return buf.tobytes()


def _write(path: str, data: bytes, files: Dict[str, Dict[str, Any]], rel: str) -> None:
    with open(path, "wb") as f:
        f.write(data)
    files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _segment(seg_id: int, category_id: int, mask: np.ndarray) -> Dict[str, Any]:
    x, y, bw, bh = cv2.boundingRect(mask.view(np.uint8))
    return {"id": seg_id, "category_id": category_id, "iscrowd": 0,
            "bbox": [x, y, bw, bh], "area": int(mask.sum())}


def generate_panoptic_split(out_dir: str, cfg: PanopticShapesConfig, progress: bool = True,
                            desc: str = "") -> Dict[str, Any]:
    """Write a split (see the module) into ``out_dir``; ``manifest.json`` last. Not atomic by
    itself: :func:`~solo_d2.shapes.ensure_split` makes it so. Returns the panoptic json."""
    from tqdm import tqdm

    for sub in ("images", "panoptic"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    h, w = cfg.shapes.image_size
    images, pan_anns, inst_anns = [], [], []
    files: Dict[str, Dict[str, Any]] = {}
    for i in tqdm(range(cfg.num_images), desc=desc or "solo_shapes_panoptic", unit="img",
                  disable=not progress):
        image, instances, stuff = render_panoptic(i, cfg)
        name = f"{i:06d}.png"
        ok, buf = cv2.imencode(".png", image)
        if not ok:  # pragma: no cover
            raise RuntimeError(f"cv2 could not encode image {i}")
        _write(os.path.join(out_dir, "images", name), buf.tobytes(), files, f"images/{name}")
        ids = np.zeros((h, w), dtype=np.int64)
        segments = []
        for category_id, mask in instances:
            m = mask.astype(bool)
            ids[m] = len(segments) + 1
            segments.append(_segment(len(segments) + 1, category_id, m))
            ann = mask_annotation(mask, category_id, image_id=i + 1, ann_id=len(inst_anns) + 1)
            if ann is not None:
                inst_anns.append(ann)
        for category_id in np.unique(stuff[stuff > 0]).tolist():
            m = stuff == category_id
            ids[m] = len(segments) + 1
            segments.append(_segment(len(segments) + 1, int(category_id), m))
        _write(os.path.join(out_dir, "panoptic", name), _id_png(ids), files, f"panoptic/{name}")
        images.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        pan_anns.append({"image_id": i + 1, "file_name": name, "segments_info": segments})
    info = {"description": "solo_d2 procedural panoptic shapes", "config": cfg.to_dict()}
    pan = {"info": info, "images": images, "annotations": pan_anns,
           "categories": cfg.categories()}
    write_coco_json(os.path.join(out_dir, "panoptic.json"), pan)
    things = coco_categories(cfg.shapes.classes)
    write_coco_json(os.path.join(out_dir, "annotations.json"),
                    {"info": info, "images": images, "annotations": inst_anns,
                     "categories": things})
    for rel in ("panoptic.json", "annotations.json"):
        with open(os.path.join(out_dir, rel), "rb") as f:
            data = f.read()
        files[rel] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"generator_version": GENERATOR_VERSION, "config": cfg.to_dict(),
                "num_images": len(images), "files": files}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        f.write(json.dumps(manifest, sort_keys=True))
    return pan
