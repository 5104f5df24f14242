"""COCO panoptic data for PanopticSOLO: registration from the config, things and stuff from
``isthing``, training targets from the id-coded PNGs (checked against the PNGs read
independently), Detectron2's standard numbering, and bad files and entries."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T

from conftest import ROOT, TOY_PANOPTIC_CATEGORIES, write_toy_panoptic
from solo_d2.data import ImageReadError, PanopticDatasetMapper, PanopticLabels
from solo_d2.data.bad_files import BadSampleError
from solo_d2.data.class_checks import check_dataset_classes, check_stuff_classes
from solo_d2.data.cfg_datasets import register_panoptic_datasets
from solo_d2.engine import get_solo_cfg

BASE = os.path.join(ROOT, "configs", "quick_schedules", "SOLOv2_Panoptic_R18_shapes.yaml")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_panoptic")
    info = write_toy_panoptic(str(root))
    register_panoptic_datasets([["test_pan_toy", *info["entry"]]])
    return info


def _ids(path):
    bgr = cv2.imread(path).astype(np.int64)
    return bgr[..., 2] + 256 * bgr[..., 1] + 65536 * bgr[..., 0]


def test_things_and_stuff_come_from_isthing(toy):
    records = DatasetCatalog.get("test_pan_toy")
    meta = MetadataCatalog.get("test_pan_toy")
    assert len(records) == 6 and meta.evaluator_type == "coco_panoptic_seg"
    assert meta.thing_classes == ["box", "disc"]
    assert meta.stuff_classes == ["things", "sky", "ground"]
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0, 2: 1}
    assert meta.stuff_dataset_id_to_contiguous_id == {0: 0, 7: 1, 9: 2}
    with open(toy["panoptic_json"]) as f:
        raw = {a["image_id"]: a for a in json.load(f)["annotations"]}
    for rec in records:
        expected = {s["id"]: {1: (True, 0), 2: (True, 1), 7: (False, 1), 9: (False, 2)}[
            s["category_id"]] for s in raw[rec["image_id"]]["segments_info"]}
        assert {s["id"]: (s["isthing"], s["category_id"]) for s in rec["segments_info"]} == expected
    check_dataset_classes(["test_pan_toy"], 2)
    check_stuff_classes(["test_pan_toy"], 3)
    with pytest.raises(ValueError, match=r"2 stuff classes, 3 with \"things\", but "
                                         r"MODEL.SEM_SEG_HEAD.NUM_CLASSES is 4; set .* 3"):
        check_stuff_classes(["test_pan_toy"], 4)


@pytest.mark.parametrize("flip", [False, True])
def test_mapper_targets_are_the_pngs(toy, flip):
    records = DatasetCatalog.get("test_pan_toy")
    mapper = PanopticDatasetMapper(
        is_train=True, augmentations=[T.RandomFlip(prob=1.0)] if flip else [],
        image_format="BGR", use_instance_mask=True,
        labels=PanopticLabels.from_datasets("test_pan_toy"))
    for rec in records:
        out = mapper(rec)
        ids = _ids(rec["pan_seg_file_name"])
        if flip:
            ids = ids[:, ::-1]
        segments = {s["id"]: s for s in rec["segments_info"]}
        sem = np.full(ids.shape, 255)
        sem[ids == 1000], sem[ids == 2000] = 1, 2
        sem[(ids > 0) & (ids < 1000)] = 0  # every thing, crowd included
        assert torch.equal(out["sem_seg"], torch.from_numpy(sem))
        things = [i for i, s in segments.items() if s["isthing"] and not s.get("iscrowd")]
        inst = out["instances"]
        assert inst.gt_masks.tensor.shape[0] == len(things)
        for k, i in enumerate(things):
            assert np.array_equal(inst.gt_masks.tensor[k].numpy(), ids == i)
            assert inst.gt_classes[k] == segments[i]["category_id"]
            ys, xs = np.nonzero(ids == i)
            assert inst.gt_boxes.tensor[k].tolist() == [xs.min(), ys.min(), xs.max() + 1,
                                                         ys.max() + 1]
    assert any(s.get("iscrowd") for s in records[0]["segments_info"])  # left out above


def test_detectron2_standard_numbering():
    """Detectron2's coco_2017_val_panoptic numbers things and stuff together (0..132); the
    model numbers things 0..79 and stuff 1..53, as the separated format."""
    labels = PanopticLabels.from_datasets("coco_2017_val_panoptic")
    sep = PanopticLabels.from_datasets("coco_2017_val_panoptic_separated")
    assert (labels.num_things, labels.num_stuff) == (80, 53)
    assert labels.thing_ids == sep.thing_ids and labels.stuff_ids == sep.stuff_ids
    assert labels.thing_classes == sep.thing_classes
    assert labels.record_thing[0] == 0 and labels.record_stuff[80] == 1  # person, banner
    assert sep.record_stuff[1] == 1
    check_dataset_classes(["coco_2017_val_panoptic"], 80)
    check_stuff_classes(["coco_2017_val_panoptic", "coco_2017_val_panoptic_separated"], 54)


def test_bad_pngs_are_bad_samples(toy, tmp_path):
    records = DatasetCatalog.get("test_pan_toy")
    mapper = PanopticDatasetMapper(is_train=True, augmentations=[], image_format="BGR",
                                   use_instance_mask=True,
                                   labels=PanopticLabels.from_datasets("test_pan_toy"))
    rec = dict(records[1])
    rec["segments_info"] = [s for s in rec["segments_info"] if s["id"] != 20]
    with pytest.raises(BadSampleError, match=r"0001.png: segment ids \[20\] of its panoptic "
                                             r"PNG are not in its segments_info"):
        mapper(rec)
    broken = tmp_path / "broken.png"
    broken.write_bytes(open(records[1]["pan_seg_file_name"], "rb").read()[:60])
    with pytest.raises(ImageReadError, match="broken.png"):
        mapper(dict(records[1], pan_seg_file_name=str(broken)))
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(BadSampleError, match="small.png: 10x10 but its image"):
        mapper(dict(records[1], pan_seg_file_name=str(small)))


def test_category_without_isthing_is_a_clear_error(tmp_path):
    cats = [dict(c) for c in TOY_PANOPTIC_CATEGORIES]
    del cats[2]["isthing"]
    info = write_toy_panoptic(str(tmp_path), num_images=1, categories=cats)
    register_panoptic_datasets([["test_pan_no_isthing", *info["entry"]]])
    with pytest.raises(ValueError, match=r"panoptic.json: category 7 \(sky\) has isthing "
                                         r"'\(missing\)'"):
        DatasetCatalog.get("test_pan_no_isthing")


def test_config_entries(toy, tmp_path):
    key = "DATASETS.REGISTER_COCO_PANOPTIC"
    ok = f"[['test_pan_cfg', '{toy['image_root']}', '{toy['panoptic_root']}', " \
         f"'{toy['panoptic_json']}']]"
    cfg = get_solo_cfg(BASE, [key, ok, "DATASETS.TRAIN", "('test_pan_cfg',)"])
    get_solo_cfg(BASE, [key, ok])  # the same entry again: nothing to do
    assert len(DatasetCatalog.get(cfg.DATASETS.TRAIN[0])) == 6
    bad = [
        ("[['only_a_name']]", r"expected \[name, image_root, panoptic_root, panoptic_json\]"),
        (f"[['coco_2017_val', '{tmp_path}', '{tmp_path}', '{toy['panoptic_json']}']]",
         "'coco_2017_val' is already registered"),
        (f"[['test_pan_nojson', '{tmp_path}', '{tmp_path}', 'nope.json']]",
         "'test_pan_nojson': panoptic_json .*nope.json' does not exist"),
    ]
    for entry, message in bad:
        with pytest.raises(ValueError, match=message):
            get_solo_cfg(BASE, [key, entry])
    # train_net.py: one line, no traceback
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file", BASE, key,
         bad[2][0]], capture_output=True, text=True, cwd=str(tmp_path), timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: DATASETS.REGISTER_COCO_PANOPTIC entry 'test_pan_nojson'")
