"""The benchmark's synthetic input: one smooth random image and random ellipse instances."""
from typing import Tuple

import numpy as np
import torch

__all__ = ["make_image", "make_gt"]


def make_image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB image in [0, 255], float (3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, h // 16 + 1, w // 16 + 1), generator=g) * 255
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")[0]
    return (img + 20 * torch.rand((3, h, w), generator=g)).clamp(0, 255).round()


def make_gt(
    h: int, w: int, num: int = 5, num_classes: int = 80, seed: int = 0
) -> Tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``num`` random ellipse instances of varied sizes (small to large: all levels):
    boxes (num, 4) float32 XYXY, labels (num,) int64, masks (num, h, w) uint8."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[:h, :w]
    masks, boxes = [], []
    for i in range(num):
        size = min(h, w) * (0.05 + 0.6 * i / max(num - 1, 1))
        ry, rx = size / 2 * rng.uniform(0.6, 1.0), size / 2 * rng.uniform(0.6, 1.0)
        cy, cx = rng.uniform(ry, h - ry), rng.uniform(rx, w - rx)
        m = ((yy - cy) ** 2 / ry**2 + (xx - cx) ** 2 / rx**2) <= 1
        ys, xs = np.nonzero(m)
        masks.append(m.astype(np.uint8))
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    labels = torch.as_tensor(rng.randint(0, num_classes, size=num), dtype=torch.long)
    return torch.tensor(boxes, dtype=torch.float32), labels, np.stack(masks)
