"""PanopticSOLO exported to ONNX: the graph's instances and stuff logits are PyTorch's, and
the ONNX Runtime predictor's merged panoptic map is SOLOPredictor's."""
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from solo_d2 import SOLOPredictor  # noqa: E402
from solo_d2.export import (  # noqa: E402
    ONNXPredictor,
    compare_outputs,
    export_onnx,
    pytorch_outputs,
)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import make_head_confident, tiny_panoptic_cfg  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("panoptic_onnx")
    cfg = tiny_panoptic_cfg(STUFF_AREA_LIMIT=64)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    make_head_confident(model, cls_bias=-1.0)
    DetectionCheckpointer(model, save_dir=str(d)).save("model")
    path = export_onnx(model, str(d / "model.onnx"), torch.zeros(3, 96, 96, dtype=torch.uint8))
    cfg.MODEL.WEIGHTS = str(d / "model.pth")
    return model, path, cfg


@pytest.mark.parametrize("hw", [(96, 128), (160, 72), (101, 77)])
def test_graph_outputs_are_pytorchs(exported, hw):
    model, path, _ = exported
    g = torch.Generator().manual_seed(hw[0])
    image = (torch.rand((3, *hw), generator=g) * 255).to(torch.uint8)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == ["masks", "scores", "classes", "boxes", "sem_seg"]
    got = dict(zip(names, session.run(None, {"image": image.numpy()})))
    report = compare_outputs(pytorch_outputs(model, image), got)
    assert report.count_onnx == report.count_pytorch > 0 and report.same_classes, report
    assert report.pixel_agreement >= 0.999, report
    with torch.no_grad():
        sem = model([{"image": image}])[0]["sem_seg"].numpy()
    assert got["sem_seg"].shape == sem.shape == (4, *hw)
    np.testing.assert_allclose(got["sem_seg"], sem, atol=1e-4)


def test_onnx_predictor_merges_as_the_model(exported):
    _, path, cfg = exported
    bgr = (np.random.default_rng(1).random((128, 160, 3)) * 255).astype(np.uint8)
    ours = ONNXPredictor(path, cfg)(bgr)
    theirs = SOLOPredictor(cfg)(bgr)
    assert sorted(ours) == sorted(theirs) == ["instances", "panoptic_seg", "sem_seg"]
    np.testing.assert_allclose(ours["sem_seg"].numpy(), theirs["sem_seg"].numpy(), atol=1e-4)
    (a, sa), (b, sb) = ours["panoptic_seg"], theirs["panoptic_seg"]
    assert a.dtype == b.dtype == torch.int32
    strip = [{k: v for k, v in s.items() if k not in ("score", "area")} for s in sa]
    assert strip == [{k: v for k, v in s.items() if k not in ("score", "area")} for s in sb]
    assert {s["isthing"] for s in sa} == {True, False}  # both kinds merged
    assert (a == b).float().mean() >= 0.999
