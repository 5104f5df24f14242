"""Every MODEL.SOLO.* value is checked when the model is built (solo_d2/config/checks.py),
and a bad one is refused naming the key, the value and what is expected."""
import glob
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

import solo_d2
from conftest import ROOT, tiny_cfg
from solo_d2.config.checks import validate_solo_config


# (key, bad value, words the error must contain)
BAD_VALUES = [
    ("SCALE_RANGES", [1, 32, 16, 64, 32, 128, 64, 256, 128, 512], "SCALE_RANGES is"),
    ("SCALE_RANGES", [[32, 1], [16, 64], [32, 128], [64, 256], [128, 512]], "0 <= lo <= hi"),
    ("NUM_GRIDS", [12.5, 10, 8, 6, 4], "NUM_GRIDS is"),
    ("NUM_GRIDS", [12, 0, 8, 6, 4], "integers >= 1"),
    ("NUM_GRIDS", [12, 10, 8], "5 entries"),
    ("NUM_CLASSES", 0, "NUM_CLASSES is 0"),
    ("POS_SCALE", -0.2, "POS_SCALE is -0.2"),
    ("FEAT_CHANNELS", 33, "a multiple of 32"),
    ("STACKED_CONVS", 0, "STACKED_CONVS is 0"),
    ("CLS_DOWN_INDEX", 2, "CLS_DOWN_INDEX is 2"),
    ("DCN_TYPE", "DCNv3", "DCN_TYPE is 'DCNv3'"),
    ("PRIOR_PROB", 1.0, "PRIOR_PROB is 1.0"),
    ("DYNAMIC_CONV_SIZE", 2, "DYNAMIC_CONV_SIZE is 2"),
    ("MASK_FEAT.END_LEVEL", 5, "END_LEVEL is 5"),
    ("LOSS.DICE_WEIGHT", -1.0, "DICE_WEIGHT is -1.0"),
    ("LOSS.FOCAL_ALPHA", 1.5, "FOCAL_ALPHA is 1.5"),
    ("TEST.MASK_THRESH", 1.0, "MASK_THRESH is 1.0"),
    ("TEST.MASK_THRESH", 0.0, "MASK_THRESH is 0.0"),
    ("TEST.SCORE_THRESH", 1.5, "SCORE_THRESH is 1.5"),
    ("TEST.NMS_PRE", 0, "NMS_PRE is 0"),
    ("TEST.KERNEL", "box", "KERNEL is 'box'"),
    ("TEST.SIGMA", 0.0, "SIGMA is 0.0"),
]


def _set(cfg, key, value):
    node = cfg.MODEL.SOLO
    *parents, leaf = key.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value


@pytest.mark.parametrize("key,value,words", BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES])
def test_bad_value_is_refused_at_build_naming_the_key(key, value, words):
    cfg = tiny_cfg()
    _set(cfg, key, value)
    with pytest.raises(ValueError, match=f"MODEL.SOLO.{key}") as e:
        build_model(cfg)
    assert words in str(e.value), str(e.value)


def test_several_bad_values_are_listed_together():
    cfg = tiny_cfg()
    cfg.MODEL.SOLO.NUM_CLASSES = 0
    cfg.MODEL.SOLO.TEST.SIGMA = -1.0
    with pytest.raises(ValueError, match="NUM_CLASSES is 0(.|\n)*SIGMA is -1.0"):
        build_model(cfg)


def test_solov2_mask_stride_must_match_the_features():
    cfg = tiny_cfg("SOLOV2Head", config="SOLOv2_R50_1x.yaml")
    cfg.MODEL.SOLO.MASK_FEAT.MASK_STRIDE = 8
    with pytest.raises(ValueError, match="MASK_STRIDE is 8 .* stride .* 4"):
        build_model(cfg)


def test_solov2_dynamic_conv_size_3_infers_but_does_not_train():
    cfg = tiny_cfg("SOLOV2Head", config="SOLOv2_R50_1x.yaml")
    cfg.MODEL.SOLO.DYNAMIC_CONV_SIZE = 3
    model = build_model(cfg)
    x = {"image": torch.rand(3, 64, 64) * 255}
    with torch.no_grad():
        model.eval()([x])
    x["instances"] = Instances(
        (64, 64), gt_classes=torch.zeros(0, dtype=torch.int64), gt_boxes=Boxes(torch.zeros(0, 4))
    )
    with pytest.raises(ValueError, match="DYNAMIC_CONV_SIZE 3 .*training needs 1"):
        model.train()([x])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"),
                                                  recursive=True)), ids=os.path.basename)
def test_every_shipped_config_is_valid(path):
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(path)
    validate_solo_config(cfg)
