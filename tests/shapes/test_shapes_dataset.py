"""The built-in procedural shapes dataset: generation, annotations, cache, registration."""
import json
import os
import uuid

import numpy as np
import pytest
from pycocotools.coco import COCO

import solo_d2  # noqa: F401  registers the built-in datasets
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from solo_d2.data import BUILTIN_SHAPES, register_solo_shapes
from solo_d2.data.builtin import datasets_root
from solo_d2.shapes import (
    CLASSES,
    ShapesConfig,
    ensure_split,
    generate_split,
    mask_to_polygons,
    render_image,
    verify_split,
)

# small and fast: 10 images of 128 x 96 px; empty_prob raised so that empty images occur
SMALL = dict(image_size=(128, 96), max_size=80, empty_prob=0.3)


def small_cfg(n: int = 10, seed: int = 3) -> ShapesConfig:
    return ShapesConfig(num_images=n, seed=seed, **SMALL)


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("shapes") / "train")
    cfg = small_cfg()
    ensure_split(d, cfg, progress=False)
    return d, cfg


def _unique_prefix() -> str:
    return f"test_shapes_{uuid.uuid4().hex[:8]}"


def test_builtin_names_registered_lazily():
    assert "solo_shapes_train" in DatasetCatalog.list()
    assert "solo_shapes_val" in DatasetCatalog.list()
    meta = MetadataCatalog.get("solo_shapes_train")
    assert meta.thing_classes == list(BUILTIN_SHAPES["classes"])
    assert meta.evaluator_type == "coco"
    assert meta.json_file.endswith(os.path.join("solo_shapes", "train", "annotations.json"))
    assert meta.image_root.endswith(os.path.join("solo_shapes", "train", "images"))


def test_datasets_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SOLO_D2_DATASETS", str(tmp_path / "a"))
    assert datasets_root() == str(tmp_path / "a")
    monkeypatch.delenv("SOLO_D2_DATASETS")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets_root() == os.path.join(str(tmp_path / "xdg"), "solo_d2", "datasets")


def test_generation_is_deterministic(small_split, tmp_path):
    d, cfg = small_split
    other = str(tmp_path / "again")
    generate_split(other, cfg, progress=False)
    for rel in ["annotations.json", "manifest.json", "images/000000.png", "images/000007.png"]:
        with open(os.path.join(d, rel), "rb") as f1, open(os.path.join(other, rel), "rb") as f2:
            assert f1.read() == f2.read(), rel
    # another seed gives another dataset
    img_a, _ = render_image(0, cfg)
    img_b, _ = render_image(0, small_cfg(seed=4))
    assert not np.array_equal(img_a, img_b)


def test_annotations_are_valid(small_split):
    d, cfg = small_split
    h, w = cfg.image_size
    coco = COCO(os.path.join(d, "annotations.json"))
    assert sorted(coco.getCatIds()) == list(range(1, len(CLASSES) + 1))
    assert len(coco.getImgIds()) == cfg.num_images
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) > 0
    for ann in anns:
        assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= len(CLASSES)
        assert ann["area"] > 0
        assert len(ann["segmentation"]) >= 1
        for poly in ann["segmentation"]:
            assert len(poly) >= 6 and len(poly) % 2 == 0
            xy = np.asarray(poly).reshape(-1, 2)
            assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= w).all()
            assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= h).all()
        m = coco.annToMask(ann)
        assert m.shape == (h, w)
        # the polygons trace pixel edges: their raster is the mask the area/bbox came from
        assert abs(int(m.sum()) - ann["area"]) <= max(2, 0.02 * ann["area"])
        ys, xs = np.nonzero(m)
        x0, y0, bw, bh = ann["bbox"]
        assert abs(xs.min() - x0) <= 1 and abs(ys.min() - y0) <= 1
        assert abs(xs.max() + 1 - (x0 + bw)) <= 1 and abs(ys.max() + 1 - (y0 + bh)) <= 1
    # the images on disk are the rendered ones
    import cv2

    img = cv2.imread(os.path.join(d, "images", "000001.png"))
    assert np.array_equal(img, render_image(1, cfg)[0])


def test_visible_masks_match_renderer_and_do_not_overlap(small_split):
    _, cfg = small_split
    for i in range(cfg.num_images):
        _, instances = render_image(i, cfg)
        if not instances:
            continue
        stack = np.stack([m for _, m in instances]).astype(np.int32)
        assert stack.sum(0).max() <= 1  # visible parts of occluding shapes are disjoint
        for _, m in instances:
            assert m.sum() >= cfg.min_visible_area


def test_some_images_have_no_instances(small_split):
    d, _ = small_split
    with open(os.path.join(d, "annotations.json")) as f:
        coco = json.load(f)
    with_anns = {a["image_id"] for a in coco["annotations"]}
    empty = [im for im in coco["images"] if im["id"] not in with_anns]
    assert 0 < len(empty) < len(coco["images"])


def test_mask_to_polygons_hole_and_components():
    from pycocotools import mask as mask_util

    m = np.zeros((20, 30), np.uint8)
    m[2:12, 3:13] = 1
    m[5:8, 6:9] = 0  # a hole
    m[15:18, 20:29] = 1  # a second component
    m[0, 29] = 1  # a one-pixel speck in the corner
    polys = mask_to_polygons(m)
    assert len(polys) == 3
    rle = mask_util.merge(mask_util.frPyObjects(polys, 20, 30))
    assert np.array_equal(mask_util.decode(rle), m)
    assert mask_to_polygons(np.zeros((5, 5), np.uint8)) == []


def test_truncated_png_is_detected_and_regenerated(tmp_path):
    d = str(tmp_path / "val")
    cfg = small_cfg(n=4)
    ensure_split(d, cfg, progress=False)
    assert verify_split(d, cfg)
    png = os.path.join(d, "images", "000002.png")
    with open(png, "rb") as f:
        good = f.read()
    with open(png, "wb") as f:
        f.write(good[: len(good) // 2])
    assert not verify_split(d, cfg)
    ensure_split(d, cfg, progress=False)
    assert verify_split(d, cfg)
    with open(png, "rb") as f:
        assert f.read() == good
    # truncated json, missing manifest and changed settings are caught as well
    ann = os.path.join(d, "annotations.json")
    with open(ann, "r+") as f:
        f.truncate(10)
    assert not verify_split(d, cfg)
    ensure_split(d, cfg, progress=False)
    assert verify_split(d, cfg)
    assert not verify_split(d, small_cfg(n=5))
    os.remove(os.path.join(d, "manifest.json"))
    assert not verify_split(d, cfg)
    # nothing left behind by the atomic swap but the lock file
    assert sorted(os.listdir(tmp_path)) == [".val.lock", "val"]


def test_crash_mid_generation_leaves_nothing_that_looks_valid(monkeypatch, tmp_path):
    from solo_d2.shapes import cache as shapes  # where generate_split finds render_image

    cfg = small_cfg(n=4)
    d = str(tmp_path / "train")
    real = shapes.render_image

    def flaky(index, c):
        if index == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(index, c)

    monkeypatch.setattr(shapes, "render_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        ensure_split(d, cfg, progress=False)
    assert not os.path.exists(d)
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p] == []
    monkeypatch.setattr(shapes, "render_image", real)
    ensure_split(d, cfg, progress=False)
    assert verify_split(d, cfg, deep=True)


def test_register_twice_and_dataset_dicts(monkeypatch, tmp_path):
    monkeypatch.setenv("SOLO_D2_DATASETS", str(tmp_path))
    prefix = _unique_prefix()
    kwargs = dict(prefix=prefix, num_train=6, num_val=3, **SMALL)
    names = register_solo_shapes(**kwargs)
    try:
        assert names == [f"{prefix}_train", f"{prefix}_val"]
        assert register_solo_shapes(**kwargs) == names  # second call: no error
        assert not os.path.exists(tmp_path / prefix)  # lazy: nothing generated yet

        dicts = DatasetCatalog.get(names[1])
        assert os.path.isfile(tmp_path / prefix / "val" / "manifest.json")
        assert len(dicts) == 3
        meta = MetadataCatalog.get(names[1])
        assert meta.evaluator_type == "coco" and meta.thing_classes == list(CLASSES)
        assert os.path.isfile(meta.json_file) and os.path.isdir(meta.image_root)
        n_anns = 0
        for d in dicts:
            assert os.path.isfile(d["file_name"])
            assert (d["height"], d["width"]) == (128, 96)
            assert "annotations" in d
            for a in d["annotations"]:
                n_anns += 1
                assert a["bbox_mode"] == BoxMode.XYWH_ABS
                assert 0 <= a["category_id"] < len(CLASSES)  # contiguous ids
                assert isinstance(a["segmentation"], list) and len(a["segmentation"][0]) >= 6
        assert n_anns > 0
        # the second get only verifies the cache, and returns the same dicts
        assert DatasetCatalog.get(names[1]) == dicts
        # the metadata is enough for Detectron2's COCOEvaluator: ground truth as
        # predictions scores segm AP 100
        assert _gt_as_predictions_ap(names[1], dicts) == pytest.approx(100.0)
    finally:
        for name in names:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)


def _gt_as_predictions_ap(name, dicts) -> float:
    import torch
    from detectron2.data import detection_utils as utils
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Instances

    evaluator = COCOEvaluator(name, tasks=("segm",), output_dir=None)
    evaluator.reset()
    for d in dicts:
        h, w = d["height"], d["width"]
        gt = utils.annotations_to_instances(d["annotations"], (h, w), mask_format="bitmask")
        pred = Instances((h, w))
        pred.pred_masks = gt.gt_masks.tensor if len(gt) else torch.zeros(0, h, w, dtype=torch.bool)
        pred.pred_boxes = gt.gt_boxes
        pred.pred_classes = gt.gt_classes
        pred.scores = torch.ones(len(gt))
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": pred}])
    return evaluator.evaluate()["segm"]["AP"]


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="image_size"):
        ShapesConfig(num_images=1, image_size=8)
    with pytest.raises(ValueError, match="min_size"):
        ShapesConfig(num_images=1, min_size=50, max_size=10)


def test_class_subset_and_plain_style(tmp_path):
    """``classes`` draws only those shapes, numbered 1..len(classes) in the given order;
    ``style="plain"`` paints solid shapes on a smooth background: every pixel of an instance
    has the same colour (the cluttered style's stripes and noise do not)."""
    cfg = ShapesConfig(num_images=20, image_size=96, min_size=20, max_size=40, empty_prob=0.0,
                       classes=("rectangle", "circle"), style="plain")
    seen = set()
    for i in range(cfg.num_images):
        image, instances = render_image(i, cfg)
        for category_id, mask in instances:
            seen.add(category_id)
            colours = image[mask > 0].reshape(-1, 3)  # the visible part of one solid shape
            assert (colours == colours[0]).all()
    assert seen == {1, 2}
    coco = generate_split(str(tmp_path / "split"), cfg, progress=False)
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "rectangle"), (2, "circle")]
    with pytest.raises(ValueError, match="classes must be distinct names"):
        ShapesConfig(num_images=1, classes=("circle", "hexagon"))
    with pytest.raises(ValueError, match="style must be one of"):
        ShapesConfig(num_images=1, style="fancy")
