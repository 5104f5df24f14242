"""Every yaml recipe has a LazyConfig twin (same name, .py) that builds the same thing: the
model (module by module, every setting, state-dict keys and shapes; built on the meta device,
so that even X101-DCN costs no memory), the train and test mappers (same augmentations, same
mapped image and instances), the loaders' datasets and batch, the optimizer's parameter
groups, the learning rate along the schedule and the training settings. The numerical twin
tests (same weights, same outputs and losses) are in test_lazy_equivalence.py."""
import os

import cv2
import numpy as np
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler
from detectron2.structures import BoxMode

import solo_d2
from solo_d2.data import PanopticDatasetMapper, SOLODatasetMapper
from solo_d2.engine import LazySOLOTrainer
from solo_d2.evaluation.panoptic import build_panoptic_evaluator
from solo_d2.solver import build_solo_optimizer
from twins import (
    differences,
    lazy_lr_scheduler,
    lr_factors,
    mapper_settings,
    module_settings,
    param_groups,
)

YAML_RECIPES = [n for n in solo_d2.model_zoo.list_configs()
                if n.endswith(".yaml") and not os.path.basename(n).startswith("Base-")]
def _pair(name):
    ycfg = solo_d2.model_zoo.get_config(name)
    lcfg = solo_d2.model_zoo.get_config(name[: -len(".yaml")] + ".py")
    return ycfg, lcfg


def _meta_models(ycfg, lcfg):
    from detectron2.config import instantiate

    y = ycfg.clone()
    y.MODEL.DEVICE = "meta"
    y.DATASETS.TRAIN = y.DATASETS.TEST = ()  # no class check against unloaded data
    with torch.device("meta"):
        return build_model(y), instantiate(lcfg.model)


@pytest.fixture(scope="module")
def toy_record(tmp_path_factory):
    """A 120x160 image with two polygons, as a Detectron2 dataset dict."""
    path = str(tmp_path_factory.mktemp("twins") / "img.png")
    img = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    cv2.imwrite(path, img)
    anns = [
        {"bbox": [10, 20, 60, 50], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
         "segmentation": [[10, 20, 70, 20, 70, 70, 10, 70]], "iscrowd": 0},
        {"bbox": [80, 30, 40, 60], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 1,
         "segmentation": [[80, 30, 120, 30, 100, 90]], "iscrowd": 0},
    ]
    return {"file_name": path, "height": 120, "width": 160, "image_id": 0, "annotations": anns}


@pytest.fixture(scope="module")
def toy_panoptic_record(tmp_path_factory):
    """A 120x160 image with two things and two stuff regions, as COCO panoptic records give
    it (ids in a PNG, segments in the model's numbering: things 0.., stuff 1..)."""
    from solo_d2.data.panoptic import id_to_rgb

    d = tmp_path_factory.mktemp("twins_panoptic")
    img = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(d / "img.png"), img)
    ids = np.full((120, 160), 3)
    ids[60:] = 4
    ids[20:70, 10:70] = 1
    ids[30:90, 80:120] = 2
    cv2.imwrite(str(d / "pan.png"), id_to_rgb(ids)[:, :, ::-1])
    segments = [{"id": 1, "category_id": 0, "isthing": True},
                {"id": 2, "category_id": 1, "isthing": True},
                {"id": 3, "category_id": 1, "isthing": False},
                {"id": 4, "category_id": 2, "isthing": False}]
    return {"file_name": str(d / "img.png"), "height": 120, "width": 160, "image_id": 0,
            "pan_seg_file_name": str(d / "pan.png"), "segments_info": segments}


def _in_dataset_numbering(record, labels):
    """``record`` with its segments' category ids (model labels) as the dataset numbers them."""
    thing = {v: k for k, v in labels.record_thing.items()}
    stuff = {v: k for k, v in labels.record_stuff.items()}
    segments = [{**x, "category_id": (thing if x["isthing"] else stuff)[x["category_id"]]}
                for x in record["segments_info"]]
    return {**record, "segments_info": segments}


def test_every_yaml_recipe_has_a_lazy_twin():
    names = set(solo_d2.model_zoo.list_configs())
    assert len(YAML_RECIPES) >= 19
    assert [n for n in YAML_RECIPES if n[:-5] + ".py" not in names] == []


@pytest.mark.parametrize("name", YAML_RECIPES)
def test_twin_builds_the_same_model(name):
    ycfg, lcfg = _pair(name)
    ours, theirs = _meta_models(ycfg, lcfg)
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}
    assert differences(module_settings(ours), module_settings(theirs)) == {}


@pytest.mark.parametrize("name", YAML_RECIPES)
def test_twin_maps_data_the_same(name, toy_record, toy_panoptic_record):
    from detectron2.config import instantiate

    ycfg, lcfg = _pair(name)
    panoptic = ycfg.MODEL.META_ARCHITECTURE in ("PanopticSOLO", "PanopticFPN")
    record = toy_panoptic_record if panoptic else toy_record
    for is_train, split in ((True, "train"), (False, "test")):
        ym = (PanopticDatasetMapper if panoptic and is_train else SOLODatasetMapper)(ycfg, is_train)
        if panoptic and is_train:  # the record in the dataset's numbering of its categories
            record = _in_dataset_numbering(toy_panoptic_record, ym.labels)
        lm = instantiate(lcfg.dataloader[split].mapper)
        assert differences(mapper_settings(lm), mapper_settings(ym)) == {}
        outs = []
        for mapper in (ym, lm):
            np.random.seed(3)  # the multi-scale size and the flip
            outs.append(mapper(dict(record)))
        assert torch.equal(outs[0]["image"], outs[1]["image"])
        if is_train:
            a, b = outs[0]["instances"], outs[1]["instances"]
            assert torch.equal(a.gt_boxes.tensor, b.gt_boxes.tensor)
            assert torch.equal(a.gt_classes, b.gt_classes)
            if panoptic:
                assert len(a) == 2 and torch.equal(a.gt_masks.tensor, b.gt_masks.tensor)
                assert torch.equal(outs[0]["sem_seg"], outs[1]["sem_seg"])
                assert set(outs[0]["sem_seg"].unique().tolist()) == {0, 1, 2}
            else:
                assert [[p.tolist() for p in m] for m in a.gt_masks.polygons] == \
                    [[p.tolist() for p in m] for m in b.gt_masks.polygons]


@pytest.mark.parametrize("name", YAML_RECIPES)
def test_twin_trains_the_same(name):
    """Loaders, optimizer groups, lr schedule and training settings."""
    ycfg, lcfg = _pair(name)
    d, t = lcfg.dataloader, lcfg.train
    names = d.train.dataset.names
    assert ((names,) if isinstance(names, str) else tuple(names)) == ycfg.DATASETS.TRAIN
    assert (d.test.dataset.names,) == ycfg.DATASETS.TEST
    assert d.train.total_batch_size == ycfg.SOLVER.IMS_PER_BATCH
    assert d.train.num_workers == d.test.num_workers == ycfg.DATALOADER.NUM_WORKERS
    assert d.test.dataset.filter_empty is False
    assert d.train.dataset.get("filter_empty", True) == ycfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    assert ycfg.DATALOADER.ASPECT_RATIO_GROUPING
    panoptic = ycfg.MODEL.META_ARCHITECTURE in ("PanopticSOLO", "PanopticFPN")
    assert d.get("register_coco_panoptic", []) == list(ycfg.DATASETS.REGISTER_COCO_PANOPTIC)
    if panoptic:
        assert d.evaluator._target_ is build_panoptic_evaluator
    assert (t.max_iter, t.checkpointer.period, t.eval_period, t.log_period, t.device,
            t.output_dir) == (ycfg.SOLVER.MAX_ITER, ycfg.SOLVER.CHECKPOINT_PERIOD,
                              ycfg.TEST.EVAL_PERIOD, ycfg.SOLVER.LOG_PERIOD, ycfg.MODEL.DEVICE,
                              ycfg.OUTPUT_DIR)
    assert (t.amp.enabled, t.amp.precision) == (ycfg.SOLVER.AMP.ENABLED, ycfg.SOLVER.AMP.PRECISION)
    clip = ycfg.SOLVER.CLIP_GRADIENTS
    assert t.clip_grad.enabled == (clip.ENABLED and clip.CLIP_TYPE == "full_model")
    if t.clip_grad.enabled:
        assert (t.clip_grad.max_norm, t.clip_grad.norm_type) == (clip.CLIP_VALUE, clip.NORM_TYPE)
    assert t.init_checkpoint == ycfg.MODEL.WEIGHTS  # torchvision://resnet50 ...
    assert d.max_bad_files == ycfg.DATALOADER.MAX_BAD_FILES
    assert {k.upper(): v for k, v in t.cluster.items()} == dict(ycfg.CLUSTER)

    ours, theirs = _meta_models(ycfg, lcfg)
    y_opt = build_solo_optimizer(ycfg, theirs)
    l_opt = LazySOLOTrainer.build_optimizer(lcfg, ours)
    assert param_groups(l_opt, ours) == param_groups(y_opt, theirs)
    y_sched, l_sched = build_lr_scheduler(ycfg, y_opt), lazy_lr_scheduler(lcfg, l_opt)
    s = ycfg.SOLVER
    iters = sorted({0, 1, s.WARMUP_ITERS - 1, s.WARMUP_ITERS, s.MAX_ITER - 1,
                    *(m + k for m in s.STEPS for k in (-1, 0, 1))})
    assert l_sched._max_iter == y_sched._max_iter
    assert lr_factors(l_sched, iters) == lr_factors(y_sched, iters)
