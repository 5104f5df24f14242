"""tools/export_model.py and demo.py --onnx, run as a user runs them: the tool from another
folder on a checkpoint file, the demo on image files, ONNXPredictor beside SOLOPredictor."""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

pytest.importorskip("onnxruntime")

from conftest import (  # noqa: E402
    ROOT,
    TINY_OPTS,
    assert_export_agrees,
    make_head_confident,
    tiny_cfg,
    write_test_image,
)
from solo_d2 import SOLOPredictor, get_solo_cfg  # noqa: E402
from solo_d2.export import ONNXPredictor, export_onnx  # noqa: E402

sys.path.insert(0, ROOT)
import demo  # noqa: E402

BASE = os.path.join(ROOT, "configs", "Base-SOLO.yaml")
TOOL = os.path.join(ROOT, "tools", "export_model.py")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny SOLO checkpoint with confident masks, and the options of its config."""
    opts = [*TINY_OPTS, "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"]
    torch.manual_seed(0)
    model = build_model(get_solo_cfg(BASE, opts))
    make_head_confident(model, cls_bias=-1.0)
    path = str(tmp_path_factory.mktemp("ckpt") / "model.pth")
    torch.save({"model": model.state_dict()}, path)
    return path, [*opts, "MODEL.WEIGHTS", path]


def test_tool_exports_and_checks_against_pytorch(checkpoint, tmp_path):
    _, opts = checkpoint
    image = str(tmp_path / "img.png")
    write_test_image(image, 100, 150)
    out = subprocess.run(
        [sys.executable, TOOL, "--config-file", BASE, "--output", str(tmp_path / "exp"),
         "--sample-image", image, *opts],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert os.path.isfile(tmp_path / "exp" / "model.onnx")
    assert_export_agrees(out.stdout)


def test_onnx_predictor_matches_solo_predictor_at_the_original_size(checkpoint, tmp_path):
    weights, opts = checkpoint
    cfg = get_solo_cfg(BASE, opts)
    torch_pred = SOLOPredictor(cfg)
    path = export_onnx(torch_pred.model, str(tmp_path / "model.onnx"))
    onnx_pred = ONNXPredictor(path, cfg)
    for i, (h, w) in enumerate([(100, 150), (128, 160)]):  # resized to 128 x 192; unchanged
        image = (np.random.default_rng(i).random((h, w, 3)) * 255).astype(np.uint8)
        a, b = torch_pred(image)["instances"], onnx_pred(image)["instances"]
        assert b.image_size == (h, w) and b.pred_masks.shape[1:] == (h, w)
        assert len(a) == len(b) > 0
        assert torch.equal(a.pred_classes, b.pred_classes)
        assert (a.scores - b.scores).abs().max() < 1e-4
        # PyTorch resizes mask probabilities to the original size, the runner 0/1 masks:
        # they differ along mask borders only (identical when no resize happens).
        agreement = (a.pred_masks == b.pred_masks).float().mean().item()
        assert agreement >= (0.99 if (h, w) != (128, 160) else 0.999), agreement


def test_demo_draws_onnx_predictions(checkpoint, tmp_path):
    _, opts = checkpoint
    cfg = get_solo_cfg(BASE, opts)
    model = build_model(cfg)
    from solo_d2.checkpoint import SOLOCheckpointer

    SOLOCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    path = export_onnx(model, str(tmp_path / "model.onnx"))
    image = str(tmp_path / "a.png")
    write_test_image(image, 90, 120)
    out = tmp_path / "vis"
    rc = demo.main(["--config-file", BASE, "--onnx", path, "--input", image, "--output",
                    str(out), "--confidence-threshold", "0.0", "--opts", *opts])
    assert rc == 0
    drawing = cv2.imread(str(out / "a.png"))
    assert drawing.shape == (90, 120, 3)
    assert not np.array_equal(drawing, cv2.imread(image))  # something was drawn


def test_unexportable_models_and_opsets_are_clear_errors(tmp_path):
    cfg = tiny_cfg("SOLOV2Head", 3, "SOLOv2_R50_1x.yaml")
    cfg.MODEL.SOLO.DCN_TYPE = "DCNv2"
    with pytest.raises(ValueError, match="deformable"):
        export_onnx(build_model(cfg), str(tmp_path / "dcn.onnx"))
    with pytest.raises(ValueError, match="opset 13 is too old"):
        export_onnx(build_model(tiny_cfg()), str(tmp_path / "old.onnx"), opset=13)
