"""Reading image files: Detectron2's ``read_image``, plus 16-bit images and errors that name
the file.

Detectron2 converts every image with PIL's ``convert("RGB")``, which clips a 16-bit grayscale
PNG (PIL mode ``I;16``) at 255, so it reads as solid white, and truncates 16-bit colour to its
high byte. Here 16-bit images are decoded at full depth (OpenCV, EXIF orientation applied) and
scaled to 8 bits as ``round(v / 257)``, so 65535 maps to 255 and the histogram keeps its shape.
8-bit images take Detectron2's path unchanged, pixel for pixel.
"""
import io
from typing import Optional

import cv2
import numpy as np
from detectron2.data.detection_utils import _apply_exif_orientation, convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageReadError", "read_image"]


class ImageReadError(OSError):
    """An image file could not be read; the message names the file and the reason."""


def _is_16_bit(image: Image.Image) -> bool:
    """Whether PIL's decoder reads 16-bit samples (modes I;16*, or colour PNG/TIFF whose raw
    mode it reduces to 8 bits, such as ``RGB;16B``)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return True
    return any(";16" in str(tile.args) for tile in (image.tile or ()))


def _decode_16_bit(data: bytes) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a 16-bit image, scaled by 1/257 with rounding."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("OpenCV could not decode the 16-bit image (corrupt or cut short?)")
    if arr.dtype != np.uint16:
        raise ValueError(f"unsupported sample type {arr.dtype}; expected 8 or 16-bit integers")
    scaled = (arr.astype(np.uint32) * 255 + 32767) // 65535  # round(v * 255 / 65535)
    return np.ascontiguousarray(scaled.astype(np.uint8)[:, :, ::-1])


def read_image(file_name: str, format: Optional[str] = None) -> np.ndarray:
    """Detectron2's ``read_image`` (same arguments and output) that also reads 16-bit images
    correctly and raises :class:`ImageReadError` naming ``file_name`` when the file is
    missing, truncated or not an image.

    Args:
        file_name: image path (anything Detectron2's PathManager opens).
        format: "BGR", "RGB", "L", "YUV-BT.601" or another PIL mode, as in Detectron2.
    Returns:
        (H, W, C) uint8 image in ``format`` (float for YUV-BT.601), EXIF orientation applied.
    """
    try:
        with PathManager.open(file_name, "rb") as f:
            data = f.read()
        image = Image.open(io.BytesIO(data))
        if _is_16_bit(image):
            image = Image.fromarray(_decode_16_bit(data))
        else:
            image = _apply_exif_orientation(image)
        return convert_PIL_to_numpy(image, format)
    except UnidentifiedImageError as e:
        raise ImageReadError(f"cannot read image {file_name!r}: not an image file") from e
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, cv2.error) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ImageReadError(f"cannot read image {file_name!r}: {reason}") from e
