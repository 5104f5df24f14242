"""Image files: 16-bit PNGs scaled by hand-checked values, 8-bit files read exactly as
Detectron2 reads them, and unreadable files named in the loader's error (demo.py's handling of
them is in tests/tools/test_demo.py)."""
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.data.detection_utils import read_image as d2_read_image

from bad_inputs import write_corpus
from conftest import tiny_cfg
from solo_d2.data import ImageReadError, SOLODatasetMapper, read_image
from solo_d2.data.bad_files import TooManyBadFilesError
from solo_d2.engine import SOLOTrainer

# 16-bit value -> round(v / 257), computed by hand at the rounding boundaries
SIXTEEN_BIT = {0: 0, 128: 0, 129: 1, 32767: 127, 32768: 128, 65407: 255, 65535: 255, 385: 1}


def test_16_bit_gray_and_colour_are_scaled_not_clipped(tmp_path):
    values = np.array(list(SIXTEEN_BIT), np.uint16).reshape(2, 4)
    expected = np.array(list(SIXTEEN_BIT.values()), np.uint8).reshape(2, 4)
    gray = str(tmp_path / "gray16.png")
    cv2.imwrite(gray, values)
    out = read_image(gray, format="BGR")
    assert out.dtype == np.uint8 and out.shape == (2, 4, 3)
    assert (out == expected[:, :, None]).all()
    assert (d2_read_image(gray, format="BGR") == 255).sum() > 2  # Detectron2 clips to white

    colour = str(tmp_path / "colour16.png")
    bgr = np.stack([values, values[:, ::-1], np.full_like(values, 65535)], -1)
    cv2.imwrite(colour, bgr)
    rgb = read_image(colour, format="RGB")
    assert (rgb[:, :, 2] == expected).all() and (rgb[:, :, 1] == expected[:, ::-1]).all()
    assert (rgb[:, :, 0] == 255).all()
    assert (read_image(colour, format="BGR") == rgb[:, :, ::-1]).all()


@pytest.mark.parametrize("kind", ["rgb", "gray", "rgba"])
def test_8_bit_images_read_as_detectron2_reads_them(tmp_path, kind):
    rng = np.random.default_rng(0)
    shape = {"rgb": (9, 7, 3), "gray": (9, 7), "rgba": (9, 7, 4)}[kind]
    path = str(tmp_path / f"{kind}.png")
    cv2.imwrite(path, (rng.random(shape) * 255).astype(np.uint8))
    for fmt in ("BGR", "RGB", "L"):
        assert np.array_equal(read_image(path, fmt), d2_read_image(path, fmt)), fmt


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["truncated", "not_an_image", "missing"])
def test_unreadable_image_is_named(tmp_path, damage):
    path = str(tmp_path / "x.png")
    cv2.imwrite(path, np.full((40, 40, 3), 90, np.uint8))
    if damage == "truncated":
        _truncate(path)
    elif damage == "not_an_image":
        with open(path, "w") as f:
            f.write("hello")
    else:
        os.remove(path)
    with pytest.raises(ImageReadError, match=r"cannot read image '.*x\.png'"):
        read_image(path, "BGR")


def test_train_loader_names_a_truncated_image(tmp_path):
    c = write_corpus(str(tmp_path), cases=("objects", "rgba"))
    _truncate(os.path.join(c["images"], "rgba.png"))
    name = "solo_test_truncated_image"
    register_coco_instances(name, {}, c["json"], c["images"])
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = (name,)
    mapper = SOLODatasetMapper(cfg, True)
    d = [x for x in DatasetCatalog.get(name) if x["file_name"].endswith("rgba.png")][0]
    with pytest.raises(ImageReadError, match="rgba.png.*truncated"):
        mapper(d)
    cfg.SOLVER.IMS_PER_BATCH = 2
    # No bad file tolerated: the loader stops at it, naming it. (By default a run skips it and
    # counts it: tests/data/test_bad_files.py.)
    cfg.DATALOADER.MAX_BAD_FILES = 0.0
    with pytest.raises(TooManyBadFilesError, match="rgba.png.*truncated"):
        next(iter(SOLOTrainer.build_train_loader(cfg)))
