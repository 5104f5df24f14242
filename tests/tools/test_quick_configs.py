"""The quick-start configs (configs/quick_schedules/) build with Detectron2's builder, name the
built-in shapes datasets with a matching class count, and train one finite step."""
import glob
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import solo_d2
from conftest import ROOT
from solo_d2.engine import SOLOTrainer

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "quick_schedules", "*.yaml")))


def _load(path):
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(path)
    return cfg


def test_every_model_family_has_a_quick_start_config():
    names = {os.path.basename(p) for p in CONFIGS}
    assert {"SOLO_R18_shapes.yaml", "Decoupled_SOLO_R18_shapes.yaml", "SOLOv2_R18_shapes.yaml",
            "MaskRCNN_R18_shapes.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_quick_config_trains_one_finite_step(path):
    cfg = _load(path)
    panoptic = cfg.MODEL.META_ARCHITECTURE in ("PanopticSOLO", "PanopticFPN")
    prefix = "solo_shapes_panoptic" if panoptic else "solo_shapes"
    assert cfg.DATASETS.TRAIN == (f"{prefix}_train",) and cfg.DATASETS.TEST == (f"{prefix}_val",)
    # class count of the model == the dataset's (metadata is set without generating images)
    meta = MetadataCatalog.get(f"{prefix}_train")
    num_classes = len(meta.thing_classes)
    if panoptic:
        assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == len(meta.stuff_classes)  # with "things"
    if cfg.MODEL.META_ARCHITECTURE in ("SOLO", "PanopticSOLO"):
        assert cfg.MODEL.SOLO.NUM_CLASSES == num_classes
    else:
        assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == num_classes
    assert cfg.SOLVER.STEPS[-1] < cfg.SOLVER.MAX_ITER
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    optimizer = SOLOTrainer.build_optimizer(cfg, model)
    inst = Instances((256, 256))
    masks = torch.zeros(2, 256, 256, dtype=torch.bool)
    masks[0, 40:120, 30:90] = True
    masks[1, 150:166, 200:216] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_boxes = Boxes(torch.tensor([[30.0, 40, 90, 120], [200, 150, 216, 166]]))
    inst.gt_classes = torch.tensor([0, num_classes - 1])
    sem_seg = torch.randint(0, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, (256, 256))
    batch = [{"image": torch.rand(3, 256, 256) * 255, "instances": inst, "sem_seg": sem_seg}] * 2
    with EventStorage(0):  # Mask R-CNN logs training statistics
        losses = model(batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
