"""solo_d2.lazy: every shipped SOLO yaml recipe, translated into a LazyConfig and written as a
Python file, loads back and builds what the yaml builds (model settings module by module,
mappers, optimizer groups, lr along the schedule); what a LazyConfig cannot express is a
clear error."""
import os

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling import build_model
from detectron2.solver import build_lr_scheduler

import solo_d2
from solo_d2.data import PanopticDatasetMapper, SOLODatasetMapper
from solo_d2.engine import LazySOLOTrainer
from solo_d2.lazy import lazy_config_source, save_lazy_config, yaml_to_lazy
from solo_d2.solver import build_solo_optimizer
from twins import (
    differences,
    lazy_lr_scheduler,
    lr_factors,
    mapper_settings,
    module_settings,
    param_groups,
)

RECIPES = [n for n in solo_d2.model_zoo.list_configs() if n.endswith(".yaml")
           and not os.path.basename(n).startswith(("Base-", "MaskRCNN", "PanopticFPN"))]


@pytest.mark.parametrize("name", RECIPES)
def test_translated_recipe_builds_what_the_yaml_builds(name, tmp_path):
    ycfg = solo_d2.model_zoo.get_config(name)
    path = save_lazy_config(yaml_to_lazy(ycfg), str(tmp_path / "cfg.py"), header=name)
    lcfg = LazyConfig.load(path)
    y = ycfg.clone()
    y.MODEL.DEVICE = "meta"
    y.DATASETS.TRAIN = y.DATASETS.TEST = ()
    with torch.device("meta"):
        theirs, ours = build_model(y), instantiate(lcfg.model)
    assert differences(module_settings(ours), module_settings(theirs)) == {}
    for is_train, split in ((True, "train"), (False, "test")):
        mapper = PanopticDatasetMapper if is_train and "Panoptic" in name else SOLODatasetMapper
        assert differences(mapper_settings(instantiate(lcfg.dataloader[split].mapper)),
                           mapper_settings(mapper(ycfg, is_train))) == {}
    y_opt, l_opt = build_solo_optimizer(ycfg, theirs), LazySOLOTrainer.build_optimizer(lcfg, ours)
    assert param_groups(l_opt, ours) == param_groups(y_opt, theirs)
    iters = [0, 1, 499, 500, *ycfg.SOLVER.STEPS, ycfg.SOLVER.MAX_ITER - 1]
    assert lr_factors(lazy_lr_scheduler(lcfg, l_opt), iters) == \
        lr_factors(build_lr_scheduler(ycfg, y_opt), iters)
    t = lcfg.train
    assert (t.max_iter, t.init_checkpoint, t.output_dir, t.device) == \
        (ycfg.SOLVER.MAX_ITER, ycfg.MODEL.WEIGHTS, ycfg.OUTPUT_DIR, ycfg.MODEL.DEVICE)
    assert list(lcfg.dataloader.train.dataset.names) == list(ycfg.DATASETS.TRAIN)


def test_what_a_lazy_config_cannot_express():
    cfg = solo_d2.model_zoo.get_config("quick_schedules/MaskRCNN_R18_shapes.yaml")
    with pytest.raises(ValueError, match="MODEL.META_ARCHITECTURE 'GeneralizedRCNN'"):
        yaml_to_lazy(cfg)
    cfg = solo_d2.model_zoo.get_config("SOLO_R50_1x.yaml")
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    with pytest.raises(ValueError, match="CLIP_TYPE 'norm'"):
        yaml_to_lazy(cfg)
    vit = solo_d2.model_zoo.get_config("SOLOv2_ViTDet_B_LSJ.py")
    with pytest.raises(ValueError, match="a partial value .* cannot be written as Python"):
        lazy_config_source(vit)
