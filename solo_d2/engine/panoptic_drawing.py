"""Drawing PanopticSOLO's results: Detectron2's ``Visualizer.draw_panoptic_seg_predictions``
(stuff regions, each thing its own mask and label) plus a legend of the classes drawn, in the
image's corner (the drawing keeps the image's size)."""
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np
from detectron2.data.catalog import Metadata
from detectron2.utils.colormap import colormap
from detectron2.utils.visualizer import ColorMode, Visualizer

from ..data.panoptic import PanopticLabels

__all__ = ["panoptic_drawing_metadata", "draw_panoptic"]


def _colors(given, n: int, offset: int) -> List[List[int]]:
    if given is not None and len(given) >= n:
        return [list(c) for c in given[:n]]
    table = colormap(rgb=True, maximum=255).astype(int).tolist()
    return [table[(offset + i) % len(table)] for i in range(n)]


def panoptic_drawing_metadata(meta: Any, name: str = "") -> Metadata:
    """Metadata in the model's numbering (:class:`~solo_d2.data.PanopticLabels`) with a colour
    for every class (the dataset's where it has them, else Detectron2's colormap), so that the
    legend shows the colours drawn."""
    labels = PanopticLabels.from_metadata(meta, name)
    m = labels.metadata()
    thing_colors = meta.get("thing_colors")
    if thing_colors is not None and len(thing_colors) != labels.num_things:
        # standard numbering: colours indexed by the contiguous id over things and stuff
        table = meta.thing_dataset_id_to_contiguous_id
        fits = max(table.values()) < len(thing_colors)
        thing_colors = [thing_colors[table[k]] for k in labels.thing_ids] if fits else None
    stuff_colors = meta.get("stuff_colors")
    if stuff_colors is not None and len(stuff_colors) != labels.num_stuff + 1:
        table = meta.stuff_dataset_id_to_contiguous_id
        stuff_colors = [[82, 18, 128]] + [stuff_colors[table[k]] for k in labels.stuff_ids] \
            if max(table.values()) < len(stuff_colors) else None
    return Metadata(name=f"{name or 'panoptic'}_model_numbering",
                    thing_classes=m["thing_classes"], stuff_classes=m["stuff_classes"],
                    thing_colors=_colors(thing_colors, labels.num_things, 0),
                    stuff_colors=_colors(stuff_colors, labels.num_stuff + 1, labels.num_things))


def draw_panoptic(image_rgb: np.ndarray, output: Dict[str, Any], metadata: Metadata,
                  threshold: float = 0.0) -> Tuple[np.ndarray, int]:
    """``output["panoptic_seg"]`` drawn on ``image_rgb`` (H, W, 3), things whose score is below
    ``threshold`` left out, and a legend (a swatch and the class of every stuff region and
    thing class drawn, things with their count). Returns the drawing (H, W, 3) RGB uint8 and
    the number of segments drawn."""
    ids, segments = output["panoptic_seg"]
    ids = ids.to("cpu").clone()
    kept = []
    for s in segments:
        if s["isthing"] and s.get("score", 1.0) < threshold:
            ids[ids == s["id"]] = 0
        else:
            kept.append(s)
    vis = Visualizer(image_rgb, metadata, instance_mode=ColorMode.IMAGE)
    drawing = vis.draw_panoptic_seg_predictions(ids, kept).get_image().copy()
    entries = []
    for s in kept:
        if not s["isthing"]:
            entries.append((metadata.stuff_classes[s["category_id"]],
                            metadata.stuff_colors[s["category_id"]]))
    for c in sorted({s["category_id"] for s in kept if s["isthing"]}):
        n = sum(1 for s in kept if s["isthing"] and s["category_id"] == c)
        entries.append((f"{metadata.thing_classes[c]} x{n}", metadata.thing_colors[c]))
    _legend(drawing, entries)
    return drawing, len(kept)


def _legend(image: np.ndarray, entries: List[Tuple[str, List[int]]]) -> None:
    """Draw ``(text, rgb colour)`` rows in the top-left corner of ``image``, in place."""
    if not entries:
        return
    font, scale, row = cv2.FONT_HERSHEY_SIMPLEX, 0.35, 12
    width = max(cv2.getTextSize(t, font, scale, 1)[0][0] for t, _ in entries) + 20
    h, w = image.shape[:2]
    box_h, box_w = min(row * len(entries) + 4, h), min(width, w)
    region = image[:box_h, :box_w].astype(np.float32)
    image[:box_h, :box_w] = (region * 0.4 + 255 * 0.6).astype(np.uint8)
    for i, (text, color) in enumerate(entries):
        y = 2 + i * row
        if y + row > h:
            break
        cv2.rectangle(image, (3, y + 2), (11, y + 10), tuple(int(c) for c in color), -1)
        cv2.putText(image, text, (15, y + 9), font, scale, (0, 0, 0), 1, cv2.LINE_AA)


