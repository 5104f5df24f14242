"""Every dataset's class count is checked against MODEL.SOLO.NUM_CLASSES before anything runs
(solo_d2/data/class_checks.py), also for COCO jsons registered with register_coco_instances or
declared in the config (solo_d2/data/cfg_datasets.py), whose class names are known only once
loaded: in training, at the test loader and in train_net.py --eval-only."""
import os
import sys

import pytest
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser

from conftest import ROOT, TINY_OPTS, tiny_cfg, write_toy_coco
from solo_d2.engine import SOLOTrainer, get_solo_cfg

sys.path.insert(0, ROOT)
import train_net  # noqa: E402


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
