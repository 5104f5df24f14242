"""The synthetic "shapes" datasets of the quick start: images rendered procedurally and written
once as COCO instance json (and panoptic PNGs) + images, byte-identical on every run.

Four modules, one job each:

* :mod:`.render`: :class:`ShapesConfig` (the settings of a split) and :func:`render_image`,
  one image and the visible masks of its instances, a pure function of
  ``(seed, image index, settings)``;
* :mod:`.coco`: masks as COCO annotations (:func:`mask_to_polygons` traces pixel edges,
  holes become keyhole polygons) and the COCO json file;
* :mod:`.cache`: split directories on disk (:func:`generate_split`, :func:`verify_split`)
  and :func:`ensure_split`, which (re)generates a missing, truncated or stale split
  atomically under a file lock;
* :mod:`.panoptic`: the panoptic variant (things over stuff regions), in COCO panoptic format.
"""
from .cache import ensure_split, generate_split, verify_split
from .coco import mask_to_polygons
from .render import CLASSES, GENERATOR_VERSION, ShapesConfig, render_image

__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "ShapesConfig",
    "render_image",
    "mask_to_polygons",
    "generate_split",
    "verify_split",
    "ensure_split",
]
