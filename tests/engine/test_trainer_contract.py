"""A plain Detectron2 DefaultTrainer never silently drops a setting only SOLOTrainer honours:
it stops with what to use instead; SOLOTrainer (and subclasses of it) honour them."""
import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import DefaultTrainer

from conftest import tiny_cfg, write_toy_coco
from solo_d2.engine import SOLOTrainer


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    json_file = write_toy_coco(str(root), num_images=4)
    register_coco_instances("solo_test_trainer_contract", {}, json_file, str(root / "images"))
    return "solo_test_trainer_contract"


def _cfg(toy, tmp_path, **solver):
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = (toy,)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.MAX_ITER = 1
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.INPUT.RESIZE_BACKEND = "pil"  # Base-SOLO.yaml's "cv2" is refused on its own
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


@pytest.mark.parametrize("setting,words", [
    ({"OPTIMIZER": "ADAMW"}, "SOLVER.OPTIMIZER 'ADAMW'"),
    ({"LOG_PERIOD": 1}, "SOLVER.LOG_PERIOD 1"),
])
def test_default_trainer_refuses_solo_only_settings(toy, tmp_path, setting, words):
    cfg = _cfg(toy, tmp_path, **setting)
    with pytest.raises(ValueError, match=f"DefaultTrainer.*{words}.*solo_d2.SOLOTrainer"):
        DefaultTrainer(cfg)
    assert isinstance(SOLOTrainer(cfg).optimizer, torch.optim.Optimizer)


def test_full_model_clipping_and_cv2_resize_are_refused_too(toy, tmp_path):
    cfg = _cfg(toy, tmp_path)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "full_model"
    cfg.INPUT.RESIZE_BACKEND = "cv2"
    with pytest.raises(ValueError, match="CLIP_TYPE 'full_model'.*INPUT.RESIZE_BACKEND 'cv2'"):
        DefaultTrainer(cfg)


def test_default_trainer_with_detectron2_settings_works(toy, tmp_path):
    trainer = DefaultTrainer(_cfg(toy, tmp_path))  # SGD, PIL resize: nothing to refuse
    trainer.train()
    assert len(trainer.storage.history("total_loss").values()) == 1


def test_subclasses_of_solo_trainer_honour_them(toy, tmp_path):
    class MyTrainer(SOLOTrainer):
        pass

    trainer = MyTrainer(_cfg(toy, tmp_path, OPTIMIZER="ADAMW"))
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
