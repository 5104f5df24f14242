"""Rendering of the procedural shapes: one image and its visible instance masks.

Every image is a pure function of ``(seed, image index, generator settings)``: the same
:class:`ShapesConfig` gives the same pixels and masks on every run. Images show shapes of a
few clearly distinct classes (:data:`CLASSES`) with random size (about 8 to 200 px),
rotation, colour and texture (solid, stripes, noise), placed so that they touch and occlude
each other, over cluttered backgrounds (gradients, noise, soft blobs, distractor lines that
are not instances). Some images have no instance at all.

Instances are the *visible* part of each shape (what later shapes leave uncovered); those
whose visible area falls below ``min_visible_area`` pixels are dropped. Turning the masks
into COCO annotations is :mod:`.coco`'s job; writing splits to disk is :mod:`.cache`'s.
"""
import dataclasses
import math
from typing import Any, Dict, List, Tuple, Union

import cv2
import numpy as np

__all__ = ["CLASSES", "GENERATOR_VERSION", "STYLES", "ShapesConfig", "render_image"]

#: Shape classes; COCO category id of ``CLASSES[k]`` is ``k + 1``.
CLASSES: Tuple[str, ...] = ("circle", "triangle", "rectangle", "star", "ring", "cross")

#: Looks of the images (see ShapesConfig.style).
STYLES: Tuple[str, ...] = ("cluttered", "plain")

#: Bump whenever the rendering changes, so that cached splits are regenerated.
GENERATOR_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """Settings of one generated split. All of them are recorded in the manifest.

    Attributes:
        num_images: number of images in the split (>= 0).
        seed: base seed; image ``i`` uses ``np.random.SeedSequence([seed, i])``.
        image_size: ``H`` (square images) or ``(H, W)`` in pixels, each >= 32.
        min_size: smallest shape diameter in pixels.
        max_size: largest shape diameter in pixels (capped at 0.8 * min(H, W)).
        max_instances: most shapes drawn on one image (before occlusion drops some).
        empty_prob: probability that an image gets no shape at all.
        min_visible_area: instances with fewer visible pixels are dropped.
        classes: the shape classes drawn, a subset of :data:`CLASSES`; category id of
            ``classes[k]`` is ``k + 1``.
        style: "cluttered" (gradients, soft blobs, distractor strokes behind shapes that are
            solid, striped or noisy) or "plain" (a gradient with mild noise behind solid
            shapes): what the objects look like, not where they are.
    """

    num_images: int
    seed: int = 0
    image_size: Union[int, Tuple[int, int]] = 256
    min_size: float = 8.0
    max_size: float = 200.0
    max_instances: int = 8
    empty_prob: float = 0.1
    min_visible_area: int = 20
    classes: Tuple[str, ...] = CLASSES
    style: str = "cluttered"

    def __post_init__(self) -> None:
        size = self.image_size
        if isinstance(size, (list, tuple)):
            if len(size) != 2:
                raise ValueError(f"image_size must be an int or (H, W), got {size!r}")
            size = (int(size[0]), int(size[1]))
        else:
            size = (int(size), int(size))
        object.__setattr__(self, "image_size", size)
        if min(size) < 32:
            raise ValueError(f"image_size must be at least 32 px on each side, got {size}")
        if int(self.num_images) < 0:
            raise ValueError(f"num_images must be >= 0, got {self.num_images}")
        if not (0 < self.min_size <= self.max_size):
            raise ValueError(
                f"need 0 < min_size <= max_size, got min_size={self.min_size}, "
                f"max_size={self.max_size}"
            )
        if self.max_instances < 0:
            raise ValueError(f"max_instances must be >= 0, got {self.max_instances}")
        if not (0.0 <= self.empty_prob <= 1.0):
            raise ValueError(f"empty_prob must be in [0, 1], got {self.empty_prob}")
        classes = tuple(self.classes)
        object.__setattr__(self, "classes", classes)
        unknown = [c for c in classes if c not in CLASSES]
        if not classes or unknown or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct names out of {CLASSES}, got {classes}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")

    @property
    def height(self) -> int:
        return self.image_size[0]

    @property
    def width(self) -> int:
        return self.image_size[1]

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["image_size"] = list(self.image_size)
        d["classes"] = list(self.classes)
        return d


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated-ish BGR colour as float array (3,)."""
    hsv = np.array(
        [[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(80, 256)]]], dtype=np.uint8
    )
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Cluttered background, float32 (H, W, 3) in [0, 255]: gradient, blobs, noise, lines.

    The smooth part (gradient, soft blobs, low-frequency colour noise) is computed at 1/4
    resolution and resized bilinearly; the distractor strokes are drawn at full resolution.
    """
    sh, sw = max(h // 4, 2), max(w // 4, 2)
    xs = (np.arange(sw, dtype=np.float32)[None, :] + 0.5) * (w / sw)
    ys = (np.arange(sh, dtype=np.float32)[:, None] + 0.5) * (h / sh)
    c1 = rng.uniform(0, 255, size=3).astype(np.float32)
    c2 = rng.uniform(0, 255, size=3).astype(np.float32)
    if rng.random() < 0.7:  # linear gradient
        a = rng.uniform(0, 2 * math.pi)
        t = xs * math.cos(a) + ys * math.sin(a)
    else:  # radial gradient
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    small = c1 * (1 - t[..., None]) + c2 * t[..., None]

    # soft blobs: smooth, never crisp-edged, so they can't be mistaken for a shape
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        sigma = rng.uniform(0.04, 0.2) * min(h, w)
        wgt = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma)) * rng.uniform(0.4, 0.9)
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        small = small * (1 - wgt[..., None]) + colour * wgt[..., None]
    # low-frequency colour noise
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(8, 30), size=(6, 6, 3)).astype(np.float32)
        small = small + cv2.resize(noise, (sw, sh), interpolation=cv2.INTER_CUBIC)
    img = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)

    img = np.clip(img, 0, 255)
    # distractor strokes: straight lines and random-walk polylines (not instances)
    for _ in range(int(rng.integers(0, 6))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, size=3))
        thickness = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, p1, p2, colour, thickness, lineType=cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 8))
            steps = rng.normal(0, 0.12 * min(h, w), size=(n, 2))
            pts = np.cumsum(steps, axis=0) + np.array([rng.uniform(0, w), rng.uniform(0, h)])
            cv2.polylines(img, [np.round(pts).astype(np.int32)], False, colour, thickness, cv2.LINE_AA)
    return img


def _plain_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A two-colour linear gradient with mild noise, float32 (H, W, 3) in [0, 255]."""
    c1 = rng.uniform(0, 255, size=3).astype(np.float32)
    c2 = rng.uniform(0, 255, size=3).astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    xs = np.arange(w, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    t = xs * math.cos(a) + ys * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c1 * (1 - t[..., None]) + c2 * t[..., None]
    img = img + rng.normal(0, 6, size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255)


def _shape_mask(
    rng: np.random.Generator, name: str, cx: float, cy: float, size: float, h: int, w: int
) -> np.ndarray:
    """uint8 (H, W) mask in {0, 1} of the shape class ``name`` centred at (cx, cy), of
    diameter ``size``."""
    mask = np.zeros((h, w), dtype=np.uint8)
    r = size / 2.0
    theta = rng.uniform(0, 2 * math.pi)
    shift = 4
    scale = 1 << shift

    def fill(points: np.ndarray) -> None:
        c, s = math.cos(theta), math.sin(theta)
        rot = points @ np.array([[c, s], [-s, c]], dtype=np.float64)
        pts = np.round((rot + np.array([cx, cy])) * scale).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)

    def polar(angles: np.ndarray, radii: np.ndarray) -> np.ndarray:
        return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)

    centre = (int(round(cx * scale)), int(round(cy * scale)))
    if name == "circle":
        cv2.circle(mask, centre, int(round(r * scale)), 1, -1, cv2.LINE_8, shift)
    elif name == "ring":
        cv2.circle(mask, centre, int(round(r * scale)), 1, -1, cv2.LINE_8, shift)
        inner = r * rng.uniform(0.45, 0.7)
        cv2.circle(mask, centre, int(round(inner * scale)), 0, -1, cv2.LINE_8, shift)
    elif name == "triangle":
        angles = np.arange(3) * (2 * math.pi / 3) + rng.uniform(-0.25, 0.25, size=3)
        fill(polar(angles, r * rng.uniform(0.85, 1.0, size=3)))
    elif name == "rectangle":
        hw, hh = r, r * rng.uniform(0.45, 1.0)
        fill(np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]))
    elif name == "star":
        k = 5
        angles = np.arange(2 * k) * (math.pi / k)
        radii = np.where(np.arange(2 * k) % 2 == 0, r, r * rng.uniform(0.38, 0.5))
        fill(polar(angles, radii))
    elif name == "cross":
        a = r * rng.uniform(0.25, 0.38)
        quarter = [[a, r], [a, a], [r, a]]  # one arm's corners; the others by symmetry
        pts = []
        for qx, qy in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            pts.extend([qx * x, qy * y] for x, y in (quarter if qx * qy > 0 else quarter[::-1]))
        fill(np.array(pts, dtype=np.float64))
    else:  # pragma: no cover - CLASSES and this function go together
        raise AssertionError(name)
    return mask


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray, base: np.ndarray) -> None:
    """Paint ``mask`` pixels of float image ``img`` with colour ``base`` and a random texture."""
    x0, y0, bw, bh = cv2.boundingRect(mask)
    if bw == 0:
        return
    ys, xs = np.nonzero(mask[y0 : y0 + bh, x0 : x0 + bw])
    ys += y0
    xs += x0
    kind = rng.random()
    if kind < 0.5:  # solid
        img[ys, xs] = base
    elif kind < 0.75:  # stripes of two colours
        other = _random_colour(rng)
        a = rng.uniform(0, math.pi)
        period = rng.uniform(3, 12)
        proj = xs * math.cos(a) + ys * math.sin(a)
        on = (np.floor(proj / period).astype(np.int64) % 2) == 0
        img[ys, xs] = np.where(on[:, None], base, other)
    else:  # noisy fill
        noise = rng.normal(0, rng.uniform(8, 25), size=(len(ys), 3)).astype(np.float32)
        img[ys, xs] = np.clip(base + noise, 0, 255)


def render_image(index: int, cfg: ShapesConfig) -> Tuple[np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Render image ``index`` of the split described by ``cfg``.

    Returns:
        image: uint8 BGR array (H, W, 3).
        instances: list of ``(category_id, visible_mask)`` in drawing order, where
            category_id is in 1..len(cfg.classes) and visible_mask is a uint8 (H, W) array in
            {0, 1} with at least ``cfg.min_visible_area`` pixels.
    """
    rng = _rng(cfg.seed, index)
    h, w = cfg.image_size
    plain = cfg.style == "plain"
    img = _plain_background(rng, h, w) if plain else _background(rng, h, w)

    n = 0 if rng.random() < cfg.empty_prob else int(rng.integers(1, cfg.max_instances + 1))
    max_size = max(min(cfg.max_size, 0.8 * min(h, w)), cfg.min_size)
    log_lo, log_hi = math.log(cfg.min_size), math.log(max_size)

    drawn: List[Tuple[int, np.ndarray, float, float, float]] = []  # cls, mask, cx, cy, r
    for _ in range(n):
        cls = int(rng.integers(0, len(cfg.classes)))
        size = math.exp(rng.uniform(log_lo, log_hi))
        if drawn and rng.random() < 0.35:
            # touching / slightly overlapping a shape drawn before
            _, _, ox, oy, orad = drawn[int(rng.integers(0, len(drawn)))]
            a = rng.uniform(0, 2 * math.pi)
            d = (orad + size / 2) * rng.uniform(0.8, 1.0)
            cx, cy = ox + d * math.cos(a), oy + d * math.sin(a)
        else:
            # centres may lie a little outside the image: shapes cut by the border
            cx = rng.uniform(-0.05 * w, 1.05 * w)
            cy = rng.uniform(-0.05 * h, 1.05 * h)
        mask = _shape_mask(rng, cfg.classes[cls], cx, cy, size, h, w)
        if cv2.countNonZero(mask) < cfg.min_visible_area:
            continue
        # colour with some contrast to the background under the shape
        under = np.array(cv2.mean(img, mask)[:3], dtype=np.float32)
        colour = _random_colour(rng)
        for _ in range(4):
            if float(np.abs(colour - under).sum()) >= 90:
                break
            colour = _random_colour(rng)
        if plain:
            img[mask > 0] = colour
        else:
            _paint(rng, img, mask, colour)
        drawn.append((cls, mask, cx, cy, size / 2))

    # sensor noise over everything (does not change any mask)
    if not plain and rng.random() < 0.3:
        img = img + rng.normal(0, rng.uniform(1, 4), size=img.shape).astype(np.float32)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)

    # visible masks: what later shapes leave uncovered
    covered = np.zeros((h, w), dtype=bool)
    instances: List[Tuple[int, np.ndarray]] = []
    for cls, mask, *_ in reversed(drawn):
        m = mask.astype(bool)
        visible = m & ~covered
        covered |= m
        visible_u8 = visible.view(np.uint8)
        if cv2.countNonZero(visible_u8) >= cfg.min_visible_area:
            instances.append((cls + 1, visible_u8))
    instances.reverse()
    return image, instances
