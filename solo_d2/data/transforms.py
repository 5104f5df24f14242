"""Resizing as mmdet does it (OpenCV bilinear, mmcv's size rule), and the SOLO augmentation list.

Detectron2's ResizeShortestEdge resizes uint8 images with PIL, which antialiases; mmdet uses
``cv2.resize(..., INTER_LINEAR)``, which does not. The pixels differ enough to move a few
candidates across the score threshold, so converted mmdet checkpoints are evaluated with
``INPUT.RESIZE_BACKEND "cv2"``.
"""
from typing import List

import cv2
import numpy as np
from detectron2.data import transforms as T
from detectron2.data.detection_utils import build_augmentation

__all__ = [
    "CV2ResizeTransform",
    "CV2ResizeShortestEdge",
    "apply_resize_backend",
    "build_solo_augmentation",
    "augment_image",
]


class CV2ResizeTransform(T.ResizeTransform):
    """ResizeTransform whose images go through OpenCV's bilinear resize (masks stay nearest)."""

    def apply_image(self, img: np.ndarray, interp=None) -> np.ndarray:
        if img.dtype != np.uint8 or interp is not None:
            return super().apply_image(img, interp)
        assert img.shape[:2] == (self.h, self.w), (img.shape, (self.h, self.w))
        img = np.ascontiguousarray(img)  # OpenCV refuses negative strides (a BGR->RGB view)
        out = cv2.resize(img, (self.new_w, self.new_h), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
            out = out[:, :, None]
        return out


class CV2ResizeShortestEdge(T.ResizeShortestEdge):
    """ResizeShortestEdge with mmcv's ``rescale_size`` rule and OpenCV bilinear interpolation.

    Scale factor ``min(max_size / long_side, short / short_side)``, new side
    ``int(side * factor + 0.5)``: mmdet's ``Resize(scale=(max_size, short), keep_ratio=True)``.
    """

    def get_transform(self, image: np.ndarray) -> T.Transform:
        h, w = image.shape[:2]
        if self.is_range:
            short = np.random.randint(self.short_edge_length[0], self.short_edge_length[1] + 1)
        else:
            short = np.random.choice(self.short_edge_length)
        if short == 0:
            return T.NoOpTransform()
        factor = min(self.max_size / max(h, w), short / min(h, w))
        new_w, new_h = int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)
        return CV2ResizeTransform(h, w, new_h, new_w)


def apply_resize_backend(augs: List[T.Augmentation], backend: str) -> List[T.Augmentation]:
    """``augs`` with every ResizeShortestEdge resizing as INPUT.RESIZE_BACKEND says:
    "pil" (Detectron2's, unchanged) or "cv2" (:class:`CV2ResizeShortestEdge`)."""
    if backend not in ("pil", "cv2"):
        raise ValueError(f"INPUT.RESIZE_BACKEND must be 'pil' or 'cv2', got {backend!r}")
    if backend == "pil":
        return list(augs)
    return [
        CV2ResizeShortestEdge(a.short_edge_length, a.max_size, "range" if a.is_range else "choice")
        if type(a) is T.ResizeShortestEdge
        else a
        for a in augs
    ]


def build_solo_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Detectron2's default augmentation, with the resize backend chosen by INPUT.RESIZE_BACKEND."""
    return apply_resize_backend(build_augmentation(cfg, is_train), cfg.INPUT.RESIZE_BACKEND)


def augment_image(aug: T.Augmentation, image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) through ``aug`` (one augmentation or an AugmentationList), as a
    mapper applies it: the predictors' and the export's test-time preprocessing."""
    aug_input = T.AugInput(np.ascontiguousarray(image))
    aug(aug_input)
    return aug_input.image
