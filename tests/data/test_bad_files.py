"""Bad files in a training run (solo_d2.data.bad_files) and in
evaluation:

* the mapper names the file (and annotation) of what cannot become a sample: unreadable
  images, NaN or far-off polygon points (pycocotools would allocate without bound), invalid
  RLE, an image of another size than its record;
* skip records ride on the next sample through Detectron2's MapDataset and DataLoader
  worker processes to the trainer;
* train_net.py --num-gpus 2 with data workers: two corrupt files in the middle of the list are
  skipped, each named once, counted in metrics.json and on the console; with a lower limit the
  run stops with status 65 and both names;
* evaluation leaves an unreadable image out (its objects are not misses) and reports it.
"""
import copy
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, build_detection_train_loader
from detectron2.data.datasets import register_coco_instances
from detectron2.evaluation import COCOEvaluator
from detectron2.structures import BitMasks, BoxMode, Instances
from pycocotools import mask as mask_util

from conftest import tiny_cfg, write_toy_coco
from launch_helpers import finish, metrics, num_gpus, start, train_opts
from solo_d2.data import ImageReadError, SOLODatasetMapper
from solo_d2.data.bad_files import (
    SKIPPED_KEY,
    BadSampleError,
    SkipBadSamples,
    SkippedSamples,
    TooManyBadFilesError,
    bad_file_limit,
)
from solo_d2.engine import SOLOCOCOEvaluator, SOLOTrainer
from solo_d2.utils.exit_status import EXIT_BAD_FILES

BAD = ("0003.png", "0005.png")


def _spoil(images: str) -> None:
    """0003.png cut short, 0005.png not an image at all."""
    path = os.path.join(images, BAD[0])
    data = open(path, "rb").read()
    open(path, "wb").write(data[:200])
    open(os.path.join(images, BAD[1]), "wb").write(b"not an image")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    json_file = write_toy_coco(str(root), num_images=8)
    _spoil(str(root / "images"))
    name = "solo_test_bad_files"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, json_file, str(root / "images"))
    return {"json": json_file, "images": str(root / "images"), "name": name}


def test_bad_file_limit():
    assert bad_file_limit(0.001, 118287) == 119  # a fraction of the images, rounded up
    assert bad_file_limit(0.001, 100) == 1
    assert bad_file_limit(25, 10) == 25 and bad_file_limit(25.0, 10) == 25  # a count
    assert bad_file_limit(0, 100) == 0
    assert bad_file_limit(-1, 100) is None
    with pytest.raises(ValueError, match="whole number"):
        bad_file_limit(2.5, 100)


def _record(tmp_path, ann):
    import cv2

    path = str(tmp_path / "a.png")
    cv2.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    ann = dict({"category_id": 0, "bbox": [1, 1, 19, 19], "bbox_mode": BoxMode.XYWH_ABS,
                "iscrowd": 0, "id": 7}, **ann)
    return {"file_name": path, "height": 64, "width": 64, "image_id": 1, "annotations": [ann]}


@pytest.mark.parametrize("ann,words", [
    ({"segmentation": [[1, 1, float("nan"), 1, 20, 20]]}, "segmentation has non-finite coordinates"),
    ({"segmentation": [[1, 1, 1e9, 1, 20, 20]]}, "more than one image size outside"),
    ({"bbox": [1, float("inf"), 19, 19], "segmentation": [[1, 1, 20, 1, 20, 20]]}, "bbox has non-finite"),
    ({"segmentation": {"size": [64, 64], "counts": "!!!!"}}, "cannot become a mask: ValueError"),
    ({"segmentation": "a string"}, "cannot become a mask"),
])
@pytest.mark.parametrize("mask_format", ["polygon", "bitmask"])
def test_mapper_names_an_annotation_that_cannot_become_a_mask(tmp_path, ann, words, mask_format):
    cfg = tiny_cfg()
    cfg.INPUT.MASK_FORMAT = mask_format
    record = _record(tmp_path, ann)
    with pytest.raises(BadSampleError, match=words) as info:
        SOLODatasetMapper(cfg, True)(record)
    assert record["file_name"] in str(info.value)


def test_mapper_names_an_image_of_another_size_than_its_record(tmp_path):
    record = _record(tmp_path, {"segmentation": [[1, 1, 20, 1, 20, 20]]})
    record["height"] = 65
    with pytest.raises(BadSampleError, match="a.png.*Mismatched image shape"):
        SOLODatasetMapper(tiny_cfg(), True)(record)


def test_skip_records_ride_on_the_next_sample():
    def mapper(d):
        if d["file_name"] == "bad":
            raise ImageReadError("cannot read image 'bad': truncated")
        return {"file_name": d["file_name"]}

    skip = SkipBadSamples(mapper, limit=1, limit_text="at most 1")
    assert skip({"file_name": "a"}) == {"file_name": "a"}
    assert skip({"file_name": "bad"}) is None  # MapDataset then maps another index
    assert skip({"file_name": "c"}) == {"file_name": "c",
                                        SKIPPED_KEY: [("bad", "cannot read image 'bad': truncated")]}
    assert skip({"file_name": "bad"}) is None  # the same file again: still one bad file

    def broken_annotation(d):
        raise BadSampleError("an annotation of bad2 cannot become a mask")

    skip.mapper = broken_annotation  # a second distinct bad file passes the limit of 1
    with pytest.raises(TooManyBadFilesError, match="2 files could not.*at most 1") as info:
        skip({"file_name": "bad2"})
    assert info.value.agreed is False  # this process alone (a DataLoader worker)
    assert set(info.value.files) == {"bad", "bad2"}


def test_skip_records_reach_the_trainer_from_dataloader_workers(toy):
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = (toy["name"],)
    cfg.DATALOADER.NUM_WORKERS = 2
    cfg.SOLVER.IMS_PER_BATCH = 2
    loader = SkippedSamples(build_detection_train_loader(
        cfg, mapper=SkipBadSamples(SOLODatasetMapper(cfg, True), limit=None)))
    records, it = [], iter(loader)
    for _ in range(12):  # 24 samples of 8 images: both bad files come up
        batch = next(it)
        assert all(SKIPPED_KEY not in d and "image" in d for d in batch)
        records += loader.take()
    names = {os.path.basename(name) for name, _ in records}
    assert names == set(BAD), records
    assert all(reason.startswith("cannot read image") for _, reason in records)


def _opts(toy, out, limit, iters=8, workers=1):
    return train_opts(toy["json"], toy["images"], out, iters=iters, extra=[
        "DATALOADER.NUM_WORKERS", str(workers), "DATALOADER.MAX_BAD_FILES", str(limit)])


def test_bad_files_mid_run_are_skipped_named_once_and_counted(toy, tmp_path):
    out = tmp_path / "out"
    log = finish(start(tmp_path, [*num_gpus(2), *_opts(toy, out, 2.0)]))
    rows = [r for r in metrics(out) if "loss_cls" in r]
    assert [r["iteration"] for r in rows] == list(range(8))  # the run went on
    for name in BAD:
        path = os.path.join(toy["images"], name)
        assert log.count(f"Skipped {path} at iteration") == 1, log[-3000:]
    last = rows[-1]
    assert last["[metric]bad_files"] == 2
    # 8 iterations x 4 images of 8 images, 2 bad: each met about 4 times
    assert 2 <= last["[metric]skipped_samples"] <= 32
    assert "[metric]bad_files: 2" in log  # the console line
    assert all(np.isfinite(r["total_loss"]) for r in rows)


def test_too_many_bad_files_stop_the_run_with_their_list(toy, tmp_path):
    log = finish(start(tmp_path, [*num_gpus(2), *_opts(toy, tmp_path / "out", 1.0, 40, 0)]),
                 status=EXIT_BAD_FILES)
    assert ("2 files could not become training samples, more than "
            "DATALOADER.MAX_BAD_FILES=1: at most 1") in log
    for name in BAD:
        path = os.path.join(toy["images"], name)
        assert f"  {path}: cannot read image {path!r}" in log
    assert max(r["iteration"] for r in metrics(tmp_path / "out")) < 39


def _perfect_outputs(evaluator, inputs):
    """Predictions equal to the ground truth of each image (score 1)."""
    coco = evaluator._coco_api
    outputs = []
    for inp in inputs:
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[inp["image_id"]]))
        h, w = inp["height"], inp["width"]
        masks = np.stack([mask_util.decode(mask_util.merge(
            mask_util.frPyObjects(a["segmentation"], h, w))) for a in anns]).astype(bool)
        inst = Instances((h, w))
        inst.pred_masks = torch.from_numpy(masks)
        inst.pred_boxes = BitMasks(inst.pred_masks).get_bounding_boxes()
        inst.scores = torch.ones(len(anns))
        inst.pred_classes = torch.tensor([a["category_id"] - 1 for a in anns])
        outputs.append({"instances": inst})
    return outputs


def test_evaluation_leaves_skipped_images_out_instead_of_counting_misses(toy, tmp_path):
    good = [d for d in DatasetCatalog.get(toy["name"])
            if os.path.basename(d["file_name"]) not in BAD]
    results = {}
    for cls in (SOLOCOCOEvaluator, COCOEvaluator):
        ev = cls(toy["name"], output_dir=None) if cls is SOLOCOCOEvaluator else cls(
            toy["name"], tasks=("segm",), output_dir=None)
        ev.reset()
        inputs = copy.deepcopy(good)
        ev.process(inputs, _perfect_outputs(ev, inputs))
        results[cls.__name__] = ev.evaluate()
    ours = results["SOLOCOCOEvaluator"]
    assert ours["segm"]["AP"] == pytest.approx(100.0)
    assert ours["skipped_images"] == {"count": 2}
    # Detectron2's evaluator counts the objects of the 2 skipped images as misses
    assert results["COCOEvaluator"]["segm"]["AP"] < 90.0


def test_test_loader_skips_unreadable_images_and_the_results_say_so(toy, tmp_path):
    cfg = tiny_cfg()
    cfg.DATASETS.TEST = (toy["name"],)
    cfg.OUTPUT_DIR = str(tmp_path)
    model = SOLOTrainer.build_model(cfg).eval()
    loader = SOLOTrainer.build_test_loader(cfg, toy["name"])
    assert len([d for batch in loader for d in batch]) == 6
    assert {os.path.basename(n) for n, _ in loader.skipped} == set(BAD)
    res = SOLOTrainer.test(cfg, model)
    assert res["skipped_images"] == {"count": 2}
