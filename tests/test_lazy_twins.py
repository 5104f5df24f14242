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
from solo_d2.data import SOLODatasetMapper
from solo_d2.engine import LazySOLOTrainer
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
def test_twin_maps_data_the_same(name, toy_record):
    from detectron2.config import instantiate

    ycfg, lcfg = _pair(name)
    for is_train, split in ((True, "train"), (False, "test")):
        ym = SOLODatasetMapper(ycfg, is_train)
        lm = instantiate(lcfg.dataloader[split].mapper)
        assert differences(mapper_settings(lm), mapper_settings(ym)) == {}
        outs = []
        for mapper in (ym, lm):
            np.random.seed(3)  # the multi-scale size and the flip
            outs.append(mapper(dict(toy_record)))
        assert torch.equal(outs[0]["image"], outs[1]["image"])
        if is_train:
            a, b = outs[0]["instances"], outs[1]["instances"]
            assert torch.equal(a.gt_boxes.tensor, b.gt_boxes.tensor)
            assert torch.equal(a.gt_classes, b.gt_classes)
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
    assert ycfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS and ycfg.DATALOADER.ASPECT_RATIO_GROUPING
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
