"""Bad config values and class counts are refused before anything runs, naming the key and
the numbers: every MODEL.SOLO.* value when the model is built, every dataset's class count
(also of COCO jsons registered by register_coco_instances) before the first iteration."""
import glob
import os
import sys

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

import solo_d2
from conftest import ROOT, TINY_OPTS, tiny_cfg, write_toy_coco
from solo_d2.config_checks import validate_solo_config
from solo_d2.engine import SOLOTrainer, get_solo_cfg

sys.path.insert(0, ROOT)
import train_net  # noqa: E402

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


@pytest.fixture(scope="module")
def toy3(tmp_path_factory):
    """A COCO json with 3 categories, registered with register_coco_instances: its class
    names are unknown until it is loaded."""
    root = str(tmp_path_factory.mktemp("toy3"))
    json_file = write_toy_coco(root, num_images=4)
    register_coco_instances("solo_test_toy3", {}, json_file, os.path.join(root, "images"))
    return "solo_test_toy3"


def test_train_dataset_class_mismatch_stops_before_training(toy3):
    cfg = tiny_cfg(num_classes=5)
    cfg.DATASETS.TRAIN = (toy3,)
    cfg.SOLVER.IMS_PER_BATCH = 2
    with pytest.raises(ValueError, match=f"'{toy3}' has 3 classes but MODEL.SOLO.NUM_CLASSES is 5"):
        SOLOTrainer(cfg)


def test_test_dataset_class_mismatch_stops_before_training(toy3, tmp_path):
    json_file = write_toy_coco(str(tmp_path), num_images=2)
    register_coco_instances("solo_test_toy3_other", {}, json_file, str(tmp_path / "images"))
    cfg = tiny_cfg(num_classes=3)
    cfg.DATASETS.TRAIN = (toy3,)
    cfg.DATASETS.TEST = ("coco_2017_val",)  # 80 classes, known from Detectron2's registration
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    with pytest.raises(ValueError, match="'coco_2017_val' has 80 classes"):
        SOLOTrainer(cfg)
    # a registered json is loaded to learn its classes, and checked too
    cfg.MODEL.SOLO.NUM_CLASSES = 80
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.TEST = ("solo_test_toy3_other",)
    with pytest.raises(ValueError, match="'solo_test_toy3_other' has 3 classes"):
        SOLOTrainer.build_test_loader(cfg, "solo_test_toy3_other")


def test_eval_only_class_mismatch_stops_before_inference(toy3, tmp_path):
    args = default_argument_parser().parse_args([
        "--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"), "--eval-only",
        *TINY_OPTS, "MODEL.SOLO.NUM_CLASSES", "80",
        "DATASETS.TRAIN", "()", "DATASETS.TEST", f"('{toy3}',)", "OUTPUT_DIR", str(tmp_path),
    ])
    with pytest.raises(ValueError, match=f"'{toy3}' has 3 classes but MODEL.SOLO.NUM_CLASSES is 80"):
        train_net.main(args)


def test_datasets_declared_in_the_config_are_checked(tmp_path):
    json_file = write_toy_coco(str(tmp_path), num_images=2)
    opts = ["DATASETS.REGISTER_COCO_INSTANCES"]
    base = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
    ok = f"[['solo_test_cfg_ds', '{json_file}', '{tmp_path / 'images'}']]"
    get_solo_cfg(base, opts + [ok])
    get_solo_cfg(base, opts + [ok])  # the same entry again: nothing to do
    with pytest.raises(ValueError, match="'coco_2017_val' is already registered"):
        get_solo_cfg(base, opts + [f"[['coco_2017_val', '{json_file}', '{tmp_path}']]"])
    with pytest.raises(ValueError, match="'solo_test_cfg_missing'.*nope.json.*does not exist"):
        get_solo_cfg(base, opts + [f"[['solo_test_cfg_missing', 'nope.json', '{tmp_path}']]"])
    with pytest.raises(ValueError, match=r"expected \[name, json_file, image_root\]"):
        get_solo_cfg(base, opts + ["[['only_a_name']]"])
