"""The tools on a LazyConfig, as a user runs them: tools/export_model.py (a subprocess from
another folder, checked against PyTorch), SOLOPredictor (the test mapper's preprocessing),
demo.py, tools/benchmark.py (with key=value overrides and --vs-opts)."""
import os
import subprocess
import sys

import cv2
import pytest
import torch
from detectron2.config import instantiate

from conftest import ROOT, assert_export_agrees, make_head_confident, write_test_image
from solo_d2 import SOLOPredictor
from solo_d2.engine import load_config

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import benchmark  # noqa: E402
import demo  # noqa: E402

CONFIG = os.path.join(ROOT, "tests", "configs", "tiny_SOLO_R50_1x.py")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny lazy-built SOLO with confident masks; (weights file, the config's overrides)."""
    cfg = load_config(CONFIG)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    make_head_confident(model, cls_bias=-1.0)
    path = str(tmp_path_factory.mktemp("lazy_ckpt") / "model.pth")
    torch.save({"model": model.state_dict()}, path)
    return path, [f"train.init_checkpoint={path}"]


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("lazy_img") / "img.png")
    write_test_image(path, 100, 150)
    return path


def test_export_tool_on_a_lazy_config(checkpoint, image, tmp_path):
    pytest.importorskip("onnxruntime")
    _, opts = checkpoint
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "export_model.py"), "--config-file", CONFIG,
         "--output", str(tmp_path / "exp"), "--sample-image", image, *opts],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert_export_agrees(out.stdout)


def test_predictor_preprocesses_as_the_test_mapper(checkpoint, image):
    weights, opts = checkpoint
    cfg = load_config(CONFIG, opts)
    predictor = SOLOPredictor(cfg)
    assert predictor.input_format == "RGB"
    got = predictor(cv2.imread(image))["instances"]
    mapper = instantiate(cfg.dataloader.test.mapper)
    mapped = mapper({"file_name": image, "height": 100, "width": 150, "image_id": 0})
    assert tuple(mapped["image"].shape[1:]) == (85, 128)  # the tiny config's test resize
    with torch.no_grad():
        want = predictor.model([mapped])[0]["instances"]
    assert len(got) == len(want) > 0
    assert torch.equal(got.pred_masks, want.pred_masks) and torch.equal(got.scores, want.scores)


def test_demo_on_a_lazy_config(checkpoint, image, tmp_path):
    _, opts = checkpoint
    out = tmp_path / "vis"
    assert demo.main(["--config-file", CONFIG, "--input", image, "--output", str(out), *opts]) == 0
    drawn = cv2.imread(str(out / "img.png"))
    assert drawn is not None and drawn.shape[:2] == (100, 150)


def test_benchmark_on_a_lazy_config(checkpoint):
    _, opts = checkpoint
    report = benchmark.main([
        "--config-file", CONFIG, "--size", "64", "96", "--warmup", "0", "--num-iters", "1",
        "--train-warmup", "0", "--train-iters", "1", "--skip", "memory", "--regimes", "as-is",
        "--vs-opts", "model.head.recompute_norm_act=False", *opts])
    for side in ("ours", "alt"):
        assert report["training"]["times"][side]["total"] > 0
    first = report["training"]["first_step_losses"]  # same weights, same losses
    assert first["alt"] == first["ours"] and first["ours"]["loss_mask"] > 0
    assert report["inference"]["as-is"]["times"]["ours"]["total"] > 0
    with pytest.raises(SystemExit, match="--vs-mmdet compares with a yaml config"):
        benchmark.main(["--config-file", CONFIG, "--vs-mmdet", "--skip", "memory", *opts])


def test_benchmark_backbones_table(capsys):
    import benchmark_backbones

    tiny = [CONFIG, os.path.join(ROOT, "tests", "configs", "tiny_SOLOv2_R50_1x.py")]
    results = benchmark_backbones.main(["--configs", *tiny, "--size", "64", "96",
                                        "--train-iters", "1", "--train-warmup", "0"])
    assert list(results) == tiny
    for r in results.values():
        assert r["padded"] == [64, 96] and r["params_m"] > 1 and r["times"]["total"] > 0
    table = capsys.readouterr().out
    assert "| tiny_SOLOv2_R50_1x.py |" in table and "| 1.00x |" in table
