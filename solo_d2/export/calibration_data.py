"""The user's images an int8 export is calibrated on, preprocessed as the test loader does.

:func:`load_calibration_images` expands ``--calibration-images`` (paths or glob patterns),
picks ``count`` of them spread evenly over the sorted list, reads each in the config's
INPUT.FORMAT and resizes it with the config's test augmentation (what Detectron2's test
loader and :class:`~solo_d2.export.ONNXPredictor` do), and returns the (C, H, W) arrays the
graph takes. Every failure is a :class:`CalibrationError` with a one-line message, raised
before anything is exported.
"""
import glob
import logging
import os
from typing import List, Sequence

import numpy as np

from ..data.image_io import ImageReadError, read_image
from ..data.transforms import augment_image
from ..engine.configs import AnyConfig, input_format, inference_augmentation

__all__ = ["DEFAULT_CALIBRATION_COUNT", "CalibrationError", "expand_patterns",
           "spread", "load_calibration_images"]

logger = logging.getLogger(__name__)

#: images calibrated on unless told otherwise (docs/DEPLOYMENT.md: how the count was chosen)
DEFAULT_CALIBRATION_COUNT = 32


class CalibrationError(ValueError):
    """No usable calibration image; the message names the patterns or files."""


def expand_patterns(patterns: Sequence[str]) -> List[str]:
    """The files ``patterns`` name (paths or globs, ``**`` recursive), sorted per pattern,
    without duplicates. A pattern that names no file is a CalibrationError."""
    if not patterns:
        raise CalibrationError("--precision int8 needs --calibration-images: a few dozen of your "
                               "own images (a folder glob such as 'images/*.jpg')")
    files: List[str] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            found = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                           if os.path.isfile(p))
        else:
            found = [pattern] if os.path.isfile(pattern) else []
        if not found:
            raise CalibrationError(f"--calibration-images {pattern!r} matches no file")
        files.extend(p for p in found if p not in files)
    return files


def spread(items: Sequence[str], count: int) -> List[str]:
    """All of ``items``, the ``count`` first being spread evenly over the list (so that a
    folder sorted by time or scene is sampled across, not at its start), then the rest in
    order (replacements for unreadable ones)."""
    if count >= len(items):
        return list(items)
    first = [int(i * len(items) / count) for i in range(count)]
    chosen = set(first)
    return [items[i] for i in first] + [x for i, x in enumerate(items) if i not in chosen]


def load_calibration_images(
    cfg: AnyConfig, patterns: Sequence[str], count: int = DEFAULT_CALIBRATION_COUNT,
    dtype=np.uint8, progress: bool = True,
) -> List[np.ndarray]:
    """``count`` readable images of ``patterns`` (fewer when there are fewer), each (C, H, W)
    ``dtype`` as the graph takes it: INPUT.FORMAT channels, resized by the test augmentation.

    Unreadable files are skipped with a warning naming them (and replaced by others when
    there are more files); none readable is a CalibrationError naming the first failure.
    """
    from tqdm import tqdm

    if count < 1:
        raise CalibrationError(f"--calibration-count must be >= 1, got {count}")
    files = spread(expand_patterns(patterns), count)
    fmt, aug = input_format(cfg), inference_augmentation(cfg)
    images: List[np.ndarray] = []
    failures: List[str] = []
    bar = None  # shown from the first image read: none readable is one error line
    for path in files:
        if len(images) == count:
            break
        try:
            image = read_image(path, format=fmt)
        except ImageReadError as e:
            failures.append(str(e))
            continue
        if bar is None:
            bar = tqdm(total=min(count, len(files) - len(failures)), unit="img",
                       desc="reading calibration images", disable=not progress)
        image = augment_image(aug, image)
        images.append(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=dtype))
        bar.update(1)
    if bar is not None:
        bar.close()
    if not images:
        raise CalibrationError(f"none of the {len(files)} calibration images could be read "
                               f"(first: {failures[0]})")
    for failure in failures:
        logger.warning(f"calibration image skipped: {failure}")
    if failures:
        logger.warning(f"{len(failures)} calibration image(s) could not be read; calibrating on "
                       f"{len(images)}")
    return images
