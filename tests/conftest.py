"""Shared fixtures: a tiny SOLO config and a tiny COCO-format dataset written to a temp dir."""
import contextlib
import logging
import os

import cv2
import numpy as np
import pytest
from detectron2.config import get_cfg

import solo_d2
from solo_d2.shapes.coco import coco_categories, mask_annotation, write_coco_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_cfg(
    head: str = "SOLOHead",
    num_classes: int = 3,
    config: str = "Base-SOLO.yaml",
    fpn_channels: int = 32,
    feat_channels: int = 32,
):
    """R18-FPN SOLO (32 channels by default) with 2 stacked convs and small grids: fast on a
    CPU. ``config`` (under configs/) supplies everything else, e.g. SOLOv2's settings."""
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    cfg.MODEL.FPN.OUT_CHANNELS = fpn_channels
    cfg.MODEL.SOLO.HEAD_NAME = head
    cfg.MODEL.SOLO.FEAT_CHANNELS = feat_channels
    cfg.MODEL.SOLO.STACKED_CONVS = 2
    cfg.MODEL.SOLO.NUM_GRIDS = [12, 10, 8, 6, 4]
    cfg.MODEL.SOLO.SCALE_RANGES = [[1, 32], [16, 64], [32, 128], [64, 256], [128, 512]]
    cfg.MODEL.SOLO.NUM_CLASSES = num_classes
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ()
    cfg.INPUT.MIN_SIZE_TRAIN = (128,)
    cfg.INPUT.MAX_SIZE_TRAIN = 256
    cfg.INPUT.MIN_SIZE_TEST = 128
    cfg.INPUT.MAX_SIZE_TEST = 256
    cfg.DATALOADER.NUM_WORKERS = 0
    return cfg


def tiny_panoptic_cfg(in_features=("p2", "p3", "p4", "p5"), num_stuff: int = 3, **combine):
    """:func:`tiny_cfg`'s SOLOv2 as a PanopticSOLO: 32-channel mask features and stuff branch
    on ``in_features`` with ``num_stuff`` + 1 classes; ``combine`` sets
    MODEL.PANOPTIC_FPN.COMBINE.* keys."""
    cfg = tiny_cfg("SOLOV2Head", config="SOLOv2_R50_1x.yaml")
    cfg.MODEL.META_ARCHITECTURE = "PanopticSOLO"
    cfg.MODEL.SOLO.MASK_FEAT.FEAT_CHANNELS = 32
    cfg.MODEL.SOLO.MASK_FEAT.OUT_CHANNELS = 32
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = list(in_features)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_stuff + 1
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 32
    for key, value in combine.items():
        cfg.MODEL.PANOPTIC_FPN.COMBINE[key] = value
    return cfg


def write_test_image(path: str, h: int, w: int, seed: int = 0) -> None:
    """A random (h, w) BGR image file with a filled circle in the middle."""
    img = (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 4, (20, 200, 20), -1)
    cv2.imwrite(path, img)


def make_head_confident(model, cls_bias: float, seed: int = 1) -> None:
    """Give ``model``'s head confident, varied masks, in place: He-normal conv weights x2,
    N(0, 1) biases, and category bias ``cls_bias`` (how many cells pass the score threshold).
    A freshly initialised head has every mask probability near one value; trained heads
    have confident masks, which is what export and runner tests need to compare."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.head.named_parameters():
            if p.dim() == 4:
                p.copy_(torch.randn(p.shape, generator=g) * 2 * (2.0 / p[0].numel()) ** 0.5)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g))
        model.head.conv_cls.bias.fill_(cls_bias)


# tiny_cfg's model as train_net.py options (R18-FPN at 32 channels, 2 stacked convs, small
# grids, 128-256 px images, on the CPU, from scratch)
TINY_OPTS = [
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.RESNETS.DEPTH", "18",
    "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.FPN.OUT_CHANNELS", "32",
    "MODEL.SOLO.FEAT_CHANNELS", "32", "MODEL.SOLO.STACKED_CONVS", "2",
    "MODEL.SOLO.NUM_CLASSES", "3", "MODEL.SOLO.NUM_GRIDS", "[12, 10, 8, 6, 4]",
    "MODEL.SOLO.SCALE_RANGES", "[[1, 32], [16, 64], [32, 128], [64, 256], [128, 512]]",
    "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "256",
    "DATALOADER.NUM_WORKERS", "0",
]


def write_toy_coco(root: str, num_images: int = 8, size: int = 128, seed: int = 0) -> str:
    """Rectangles, ellipses and triangles (categories 1-3, 1-3 per image, 20-60 px) on
    dark noise, as a COCO json with PNG images (``size`` x ``size``) under ``root/images``.

    The drawing is the toy's own; the annotations (pixel-edge polygons, bbox, area of each
    full shape mask) and the json file come from the shapes dataset's COCO writer,
    :mod:`solo_d2.shapes.coco`. Returns the path of the json (``root/toy.json``).
    """
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"), exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        img = (rng.random((size, size, 3)) * 60).astype(np.uint8)
        for k in range(int(rng.integers(1, 4))):
            cls = int(rng.integers(0, 3))
            mask = np.zeros((size, size), np.uint8)
            w, h = (int(v) for v in rng.integers(20, 60, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            if cls == 0:
                cv2.rectangle(mask, (x, y), (x + w, y + h), 1, -1)
            elif cls == 1:
                cv2.ellipse(mask, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 1, -1)
            else:
                pts = np.array([[x, y + h], [x + w // 2, y], [x + w, y + h]], np.int32)
                cv2.fillPoly(mask, [pts], 1)
            img[mask > 0] = [(200, 60, 60), (60, 200, 60), (60, 60, 200)][cls]
            anns.append(mask_annotation(mask, cls + 1, image_id=i + 1, ann_id=len(anns) + 1))
        name = f"{i:04d}.png"
        cv2.imwrite(os.path.join(root, "images", name), img[:, :, ::-1])
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
    path = os.path.join(root, "toy.json")
    categories = coco_categories(("rect", "ellipse", "triangle"))
    write_coco_json(path, {"images": images, "annotations": anns, "categories": categories})
    return path


def require_mmdet():
    """The mmdet 3.3.0 reference harness (:mod:`solo_d2.testing.mmdet_reference`) with mmdet
    imported, or a skip saying why mmdet is not importable. Every test that needs mmdet asks
    here, so that all of them skip alike (and fail alike under SOLO_D2_REQUIRE_MMDET=1)."""
    from solo_d2.testing import mmdet_reference

    if mmdet_reference.import_mmdet() is None:
        pytest.skip(f"mmdet 3.3.0 reference not importable: {mmdet_reference.import_error}",
                    allow_module_level=True)
    return mmdet_reference


@pytest.fixture(autouse=True)
def _drop_log_handlers_on_closed_streams():
    """After each test: Detectron2's ``setup_logger`` binds a handler to the ``sys.stdout`` of
    the moment, which under pytest's capture is a stream closed after that test; a later
    record to it prints a "Logging error" traceback into the next test's output."""
    yield
    for logger in [logging.getLogger()] + [
            v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger)]:
        for handler in list(logger.handlers):
            if getattr(getattr(handler, "stream", None), "closed", False):
                logger.removeHandler(handler)


class LogRecords(logging.Handler):
    """A logging handler that keeps every record's message (``messages``)."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def capture_logs(caplog, name: str = "solo_d2"):
    """INFO records of logger ``name`` and its children into ``caplog``, also after an
    in-process command line has set it up with Detectron2's ``setup_logger`` (which stops its
    records from reaching the root logger, where caplog listens)."""
    logger = logging.getLogger(name)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # caplog's root handler would see each record twice
    try:
        yield
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
    """An empty weights cache ($FVCORE_CACHE) and torch.hub folder ($TORCH_HOME), no mirror."""
    from solo_d2.checkpoint.download import MIRROR_ENV

    root = tmp_path / "cache"
    monkeypatch.setenv("FVCORE_CACHE", str(root))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return root


@pytest.fixture
def cfg_factory():
    return tiny_cfg


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With SOLO_D2_REQUIRE_MMDET=1 (as .ci/run sets), a skipped test fails: CI must run the
    mmdet parity tests, never count them as passed while they silently skip."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SOLO_D2_REQUIRE_MMDET") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped under SOLO_D2_REQUIRE_MMDET=1: {report.longrepr}"


def assert_export_agrees(stdout: str) -> None:
    """tools/export_model.py's check line ("instances: PyTorch N, ONNX Runtime N; same classes
    and order: True ...") says both runtimes found the same instances, at least one."""
    line = next(x for x in stdout.splitlines() if x.startswith("instances:"))
    counts = line.split(";")[0]
    n_torch, n_onnx = (int(part.split()[-1]) for part in counts.split(","))
    assert n_torch == n_onnx > 0, line
    assert "same classes and order: True" in line, line


#: categories of :func:`write_toy_panoptic`: two things, two stuff
TOY_PANOPTIC_CATEGORIES = [
    {"id": 1, "name": "box", "isthing": 1, "color": [220, 20, 60]},
    {"id": 2, "name": "disc", "isthing": 1, "color": [0, 0, 142]},
    {"id": 7, "name": "sky", "isthing": 0, "color": [70, 130, 180]},
    {"id": 9, "name": "ground", "isthing": 0, "color": [152, 251, 152]},
]


def write_toy_panoptic(root: str, num_images: int = 6, size: int = 128, seed: int = 0,
                       categories=None) -> dict:
    """A tiny COCO panoptic dataset under ``root``: ``images/*.png``, id-coded
    ``panoptic/*.png`` and ``panoptic.json`` (:data:`TOY_PANOPTIC_CATEGORIES`). Each image: sky
    above a horizon, ground below, a 2-px unlabeled (id 0) band on the horizon, 1-2 boxes and a
    disc (one box marked iscrowd in image 0). Returns ``{"image_root", "panoptic_root",
    "panoptic_json", "entry"}``, ``entry`` the REGISTER_COCO_PANOPTIC list minus the name."""
    import json

    from solo_d2.data.panoptic import id_to_rgb

    rng = np.random.default_rng(seed)
    images_dir, pan_dir = os.path.join(root, "images"), os.path.join(root, "panoptic")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(pan_dir, exist_ok=True)
    images, anns = [], []
    for i in range(num_images):
        horizon = int(rng.integers(size // 3, 2 * size // 3))
        img = np.zeros((size, size, 3), np.uint8)
        img[:horizon] = (235, 190, 120)  # BGR: light blue sky
        img[horizon:] = (60, 150, 60)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        ids = np.where(np.arange(size)[:, None] < horizon, 1000, 2000) * np.ones((1, size), int)
        ids[horizon - 1 : horizon + 1] = 0
        segments = [{"id": 1000, "category_id": 7, "iscrowd": 0},
                    {"id": 2000, "category_id": 9, "iscrowd": 0}]
        for k in range(int(rng.integers(1, 3))):
            w, h = (int(v) for v in rng.integers(24, 48, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            ids[y : y + h, x : x + w] = 10 + k
            img[y : y + h, x : x + w] = (40, 40, 220)
            segments.append({"id": 10 + k, "category_id": 1, "iscrowd": int(i == 0 and k == 1)})
        cx, cy, r = (int(v) for v in (rng.integers(20, size - 20), rng.integers(20, size - 20),
                                      rng.integers(10, 18)))
        disc = np.zeros((size, size), np.uint8)
        cv2.circle(disc, (cx, cy), r, 1, -1)
        ids[disc > 0] = 20
        img[disc > 0] = (200, 60, 60)
        segments.append({"id": 20, "category_id": 2, "iscrowd": 0})
        present = set(np.unique(ids).tolist())
        segments = [s for s in segments if s["id"] in present]
        for s in segments:
            m = ids == s["id"]
            ys, xs = np.nonzero(m)
            s["area"] = int(m.sum())
            s["bbox"] = [int(xs.min()), int(ys.min()), int(np.ptp(xs) + 1), int(np.ptp(ys) + 1)]
        name = f"{i:04d}.png"
        cv2.imwrite(os.path.join(images_dir, name), img)
        cv2.imwrite(os.path.join(pan_dir, name), id_to_rgb(ids)[:, :, ::-1])
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
        anns.append({"image_id": i + 1, "file_name": name, "segments_info": segments})
    path = os.path.join(root, "panoptic.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": anns,
                   "categories": categories or TOY_PANOPTIC_CATEGORIES}, f)
    return {"image_root": images_dir, "panoptic_root": pan_dir, "panoptic_json": path,
            "entry": [images_dir, pan_dir, path]}
