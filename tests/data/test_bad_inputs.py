"""Every case of the bad-input corpus (tests/bad_inputs.py) through the path a user's data
takes: Detectron2's ``load_coco_json`` and loaders, solo_d2's mapper, then a training step of
every head. Negatives (empty, crowd-only, an object too small for any level) train with
category loss only; the rest with both losses; 16-bit images keep their values."""
import os

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.modeling import build_model

from bad_inputs import CASES, write_corpus
from conftest import tiny_cfg
from solo_d2.data import SOLODatasetMapper
from solo_d2.engine import SOLOTrainer

HEADS = {
    "SOLOHead": "Base-SOLO.yaml",
    "DecoupledSOLOHead": "Base-SOLO.yaml",
    "DecoupledSOLOLightHead": "Base-SOLO.yaml",
    "SOLOV2Head": "SOLOv2_R50_1x.yaml",
}
NEGATIVES = {"empty", "crowd_only", "one_pixel"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    c = write_corpus(str(tmp_path_factory.mktemp("corpus")))
    name = "solo_test_bad_inputs"
    if name not in DatasetCatalog.list():
        register_coco_instances(name, {}, c["json"], c["images"])
    c["name"] = name
    c["dicts"] = {
        os.path.splitext(os.path.basename(d["file_name"]))[0]: d for d in DatasetCatalog.get(name)
    }
    return c


def _cfg(head, name):
    cfg = tiny_cfg(head, config=HEADS[head])
    cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = False  # how people train on negatives
    cfg.DATASETS.TRAIN = (name,)
    return cfg


def test_every_case_is_loaded(corpus):
    # Detectron2 keeps images without (valid) annotations when FILTER_EMPTY_ANNOTATIONS is off,
    # and drops the degenerate polygon's object but not its image.
    assert set(corpus["dicts"]) == set(CASES)
    assert len(corpus["dicts"]["degenerate_polygon"]["annotations"]) == 1
    assert corpus["dicts"]["empty"]["annotations"] == []


@pytest.mark.parametrize("head", HEADS)
def test_every_case_trains_through_the_mapper(corpus, head):
    cfg = _cfg(head, corpus["name"])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    mapper = SOLODatasetMapper(cfg, True)
    for case in CASES:
        x = mapper(corpus["dicts"][case])
        if case in ("empty", "crowd_only"):
            assert len(x["instances"]) == 0 and not x["instances"].has("gt_masks")
        losses = model([x])
        model.zero_grad()
        sum(losses.values()).backward()
        assert all(torch.isfinite(v) for v in losses.values()), (case, losses)
        assert losses["loss_cls"] > 0, case
        if case in NEGATIVES:
            assert losses["loss_mask"].item() == 0.0, (case, losses)
        else:
            assert losses["loss_mask"] > 0, (case, losses)
        # every trainable parameter is in the graph, negatives included (DDP needs it)
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad), case


def test_a_batch_of_negatives_from_the_train_loader_trains(tmp_path):
    c = write_corpus(str(tmp_path), cases=("empty", "crowd_only"))
    name = "solo_test_negatives_only"
    register_coco_instances(name, {}, c["json"], c["images"])
    cfg = _cfg("SOLOHead", name)
    cfg.SOLVER.IMS_PER_BATCH = 2
    torch.manual_seed(0)
    model = build_model(cfg).train()
    batch = next(iter(SOLOTrainer.build_train_loader(cfg)))
    assert len(batch) == 2 and all(len(x["instances"]) == 0 for x in batch)
    losses = model(batch)
    assert losses["loss_mask"].item() == 0.0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_image_formats_are_read_to_the_same_8_bit_pixels(corpus):
    """The corpus writes one 8-bit RGB picture as 16-bit gray (v * 257), 16-bit colour,
    8-bit gray and RGBA: each reads back to its 8-bit values exactly."""
    cfg = _cfg("SOLOHead", corpus["name"])
    cfg.INPUT.FORMAT = "RGB"
    mapper = SOLODatasetMapper(cfg, False)
    image = {case: mapper(corpus["dicts"][case])["image"].numpy() for case in CASES}
    rgb = image["objects"]  # the same picture generator, written as 8-bit RGB
    assert np.array_equal(image["color16"].shape, rgb.shape)
    assert image["color16"][:, 30:90, 20:80].tolist() == rgb[:, 30:90, 20:80].tolist()
    for case in ("gray16", "gray8"):
        # gray: the red channel of the picture, replicated to 3 channels; the object is
        # (200, 60, 60), so it reads 200, not 255 (Detectron2 reads 16-bit gray as white)
        assert (image[case][:, 30:90, 20:80] == 200).all(), case
        assert (image[case][0] == image[case][1]).all() and (image[case][0] == image[case][2]).all()
    assert (image["rgba"][:, 30:90, 20:80] == np.array([200, 60, 60])[:, None, None]).all()
