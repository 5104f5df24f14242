"""A converted mmdet checkpoint in a lazy-built model: tools/convert_mmdet_checkpoint.py with
--config-out X.py writes a LazyConfig; the model it builds, with the converted weights loaded
by train_net's checkpointer, predicts exactly what the yaml-built model (--config-out X.yaml,
itself held to mmdet by test_parity_mmdet.py) predicts."""
import os
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import build_model

import solo_d2
from conftest import ROOT, require_mmdet
from solo_d2.checkpoint import SOLOCheckpointer

sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_mmdet_checkpoint  # noqa: E402


# (category shift, mask shift, category gain) of test_parity_mmdet.py
SHIFTS = {"SOLOHead": (3.5, 4.6, 1.0), "DecoupledSOLOLightHead": (3.5, 5.6, 1.0),
          "SOLOV2Head": (0.0, 30.0, 10.0)}


@pytest.mark.parametrize("head", list(SHIFTS))
def test_converted_checkpoint_in_a_lazy_built_model(head, tmp_path):
    R = require_mmdet()
    mm_cfg = R.small_solo_config(head)
    mm = R.build_mmdet_model(mm_cfg, seed=3)
    R.shift_head_biases(mm, *SHIFTS[head])  # candidates and masks to compare
    src = str(tmp_path / "mmdet.pth")
    R.save_mmdet_checkpoint(mm, mm_cfg, src, classes=["cat", "dog", "car", "tree"])
    dst = str(tmp_path / "solo_d2.pth")
    for ext in ("yaml", "py"):
        assert convert_mmdet_checkpoint.main([src, dst, "--config-out",
                                              str(tmp_path / f"cfg.{ext}")]) == 0

    ycfg = get_cfg()
    solo_d2.add_solo_config(ycfg)
    ycfg.merge_from_file(str(tmp_path / "cfg.yaml"))
    ycfg.MODEL.DEVICE = "cpu"
    ymodel = build_model(ycfg).eval()
    DetectionCheckpointer(ymodel).load(ycfg.MODEL.WEIGHTS)

    lcfg = LazyConfig.load(str(tmp_path / "cfg.py"))
    assert lcfg.train.init_checkpoint == dst and lcfg.model.head._target_.__name__ == head
    lcfg.train.device = "cpu"
    lmodel = instantiate(lcfg.model).eval()
    extra = SOLOCheckpointer(lmodel).load(lcfg.train.init_checkpoint)
    assert extra["thing_classes"] == ["cat", "dog", "car", "tree"]
    ysd, lsd = ymodel.state_dict(), lmodel.state_dict()
    assert ysd.keys() == lsd.keys() and all(torch.equal(ysd[k], lsd[k]) for k in ysd)

    g = torch.Generator().manual_seed(0)
    batch = [{"image": torch.randint(0, 256, (3, 128, 160), generator=g).float(),
              "height": 200, "width": 250}]
    with torch.no_grad():
        a, b = ymodel(batch)[0]["instances"], lmodel(batch)[0]["instances"]
    assert len(a) > 0 and len(a) == len(b)
    assert torch.equal(a.pred_masks, b.pred_masks) and torch.equal(a.scores, b.scores)
    assert torch.equal(a.pred_classes, b.pred_classes)
