"""tools/export_model.py --precision int8 / bf16 on a tiny model trained here, run as users run
it: the files agree with PyTorch within docs/DEPLOYMENT.md's tolerance through ONNXPredictor
and demo.py in both runtimes; bad calibration inputs are one-line errors and leave nothing."""
import logging
import os
import sys

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from conftest import LogRecords, ROOT, tiny_cfg, write_toy_coco  # noqa: E402
from solo_d2 import SOLOPredictor  # noqa: E402
from solo_d2.export_benchmark.agreement import MaskAgreement  # noqa: E402
from solo_d2.engine import SOLOTrainer  # noqa: E402
from solo_d2.export import ONNXPredictor  # noqa: E402

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import demo  # noqa: E402
import export_model  # noqa: E402

#: docs/DEPLOYMENT.md "Tolerance": of PyTorch fp32's instances scoring >= 0.3, an int8 file
#: finds at least this share again (same class, mask IoU >= 0.5) ...
INT8_MATCHED = 0.9
#: ... with at least this mean mask IoU
INT8_MEAN_IOU = 0.9


def _allowed_misses(n: int) -> int:
    """Instances of ``n`` that an int8 file may lose: 10 %, and at least one (the tiny
    model's few instances make 10 % less than one instance)."""
    return max(1, int((1 - INT8_MATCHED) * n))


def _train_tiny(tmp, iters: int = 200):
    """A tiny SOLOv2 (R18, 32 channels) trained from scratch on 4 toy images of 96 px until
    its masks and scores are confident on them; its yaml config and the images' folder."""
    json_file = write_toy_coco(str(tmp / "data"), num_images=4, size=96)
    cfg = tiny_cfg("SOLOV2Head", 3, "SOLOv2_R50_1x.yaml")
    cfg.DATASETS.REGISTER_COCO_INSTANCES = [["toy_q", json_file, str(tmp / "data" / "images")]]
    cfg.DATASETS.TRAIN = ("toy_q",)
    cfg.DATASETS.TEST = ()  # no evaluation after training
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.INPUT.MIN_SIZE_TRAIN = (96,)
    cfg.INPUT.MIN_SIZE_TEST = 96
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.SOLVER.OPTIMIZER = "ADAMW"
    cfg.SOLVER.BASE_LR = 0.003
    cfg.SOLVER.WARMUP_ITERS = 20
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.MAX_ITER = iters
    cfg.SOLVER.CHECKPOINT_PERIOD = 100000
    cfg.SOLVER.LOG_PERIOD = 100
    cfg.TEST.EVAL_PERIOD = 0
    cfg.SEED = 1
    cfg.OUTPUT_DIR = str(tmp / "train")
    torch.manual_seed(1)
    trainer = SOLOTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    cfg.MODEL.WEIGHTS = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
    config = str(tmp / "tiny_solov2.yaml")
    with open(config, "w") as f:
        f.write(cfg.dump())
    return config, str(tmp / "data" / "images")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return _train_tiny(tmp_path_factory.mktemp("tiny_trained"))


def _export(config, out, *extra):
    return export_model.main(["--config-file", config, "--output", str(out), *extra])


def _agreement(config, images, path, backend):
    cfg = demo.setup_cfg(demo.get_parser().parse_args(
        ["--config-file", config, "--input", "x", "--output", "o"]))
    torch_pred, onnx_pred = SOLOPredictor(cfg), ONNXPredictor(path, cfg, backend=backend)
    acc = MaskAgreement(score_thresh=0.3)
    for name in sorted(os.listdir(images)):
        image = cv2.imread(os.path.join(images, name))
        acc.add(torch_pred(image)["instances"], onnx_pred(image)["instances"])
    return acc.result()


def test_int8_and_bf16_files_agree_with_pytorch(trained, tmp_path, capsys):
    config, images = trained
    assert _export(config, tmp_path / "fp32") == 0
    assert _export(config, tmp_path / "int8", "--precision", "int8", "--calibration-images",
                   os.path.join(images, "*.png"), "--force") == 0
    assert _export(config, tmp_path / "bf16", "--precision", "bf16", "--force") == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed
    fp32 = _agreement(config, images, str(tmp_path / "fp32" / "model.onnx"), "onnxruntime")
    # the trained model is confident on its images: something to agree on
    assert fp32["reference_instances"] >= 4, fp32
    assert fp32["matched"] == fp32["identical"] == 1.0 and fp32["extra"] == 0, fp32
    for backend in ("openvino", "onnxruntime"):
        int8 = _agreement(config, images, str(tmp_path / "int8" / "model.onnx"), backend)
        n = fp32["reference_instances"]
        assert round(int8["matched"] * n) >= n - _allowed_misses(n), (backend, int8)
        assert int8["mean_iou"] >= INT8_MEAN_IOU, (backend, int8)
        assert int8["extra"] <= 1 - INT8_MATCHED, (backend, int8)
    bf16 = _agreement(config, images, str(tmp_path / "bf16" / "model.onnx"), "openvino")
    assert bf16["matched"] >= INT8_MATCHED and bf16["mean_iou"] >= INT8_MEAN_IOU, bf16


def _demo_counts(argv):
    """demo.py's "<path>: N instances >= thr" lines, as {file name: N}."""
    records = LogRecords()
    logging.getLogger("solo_d2.demo").addHandler(records)
    try:
        assert demo.main(argv) == 0
    finally:
        logging.getLogger("solo_d2.demo").removeHandler(records)
    counts = {}
    for m in records.messages:
        if " instances >= " in m:
            path, rest = m.split(": ", 1)
            counts[os.path.basename(path)] = int(rest.split()[0])
    return counts


def test_demo_runs_an_int8_file_in_both_backends(trained, tmp_path):
    config, images = trained
    assert _export(config, tmp_path / "int8", "--precision", "int8", "--calibration-images",
                   os.path.join(images, "*.png"), "--calibration-count", "4", "--force") == 0
    pattern = os.path.join(images, "*.png")
    base = ["--config-file", config, "--input", pattern, "--confidence-threshold", "0.5"]
    ref = _demo_counts([*base, "--output", str(tmp_path / "torch")])
    assert sum(ref.values()) >= 4
    for backend in ("openvino", "onnxruntime"):
        got = _demo_counts([*base, "--output", str(tmp_path / backend), "--onnx",
                            str(tmp_path / "int8" / "model.onnx"), "--backend", backend,
                            "--threads", "1"])
        assert got.keys() == ref.keys()
        differ = sum(abs(got[k] - ref[k]) for k in ref)
        assert differ <= _allowed_misses(sum(ref.values())), (backend, ref, got)
        drawn = cv2.imread(str(tmp_path / backend / sorted(ref)[0]))
        assert drawn.shape == (96, 96, 3)


@pytest.mark.parametrize("calibration, message", [
    ([], "needs --calibration-images"),
    (["--calibration-images", "{tmp}/none/*.jpg"], "none/*.jpg' matches no file"),
    (["--calibration-images", "{tmp}/bad/*.png"], "none of the 3 calibration images could be read"),
], ids=["missing", "empty-glob", "unreadable"])
def test_bad_calibration_inputs_are_one_line_errors_and_leave_nothing(
        tmp_path, capsys, calibration, message):
    (tmp_path / "bad").mkdir()
    for i in range(3):
        (tmp_path / "bad" / f"{i}.png").write_bytes(b"not an image")
    config = os.path.join(ROOT, "configs", "quick_schedules", "SOLOv2_R18_shapes.yaml")
    out = tmp_path / "export"
    rc = export_model.main(["--config-file", config, "--output", str(out), "--precision", "int8",
                            *[a.format(tmp=tmp_path) for a in calibration], "MODEL.WEIGHTS", ""])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not out.exists()


def test_a_precision_that_does_not_pay_leaves_nothing(tmp_path, capsys, monkeypatch):
    from solo_d2.export import low_precision

    # the measurement says int8 is no faster: refused, the temporary files removed
    monkeypatch.setattr(low_precision, "measure_gain", lambda *a, **k: (1.0, 1.0))
    config = os.path.join(ROOT, "configs", "quick_schedules", "SOLOv2_R18_shapes.yaml")
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), np.full((96, 96, 3), 60 * i, np.uint8))
    out = tmp_path / "export"
    rc = export_model.main(["--config-file", config, "--output", str(out), "--precision",
                            "int8", "--calibration-images", str(images / "*.png"),
                            "MODEL.WEIGHTS", ""])
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]  # after the progress
    assert rc == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert "int8 is not worth it here" in errors[0] and "1.00x" in errors[0], errors
    assert not out.exists()
    out.mkdir()  # an existing folder stays, empty
    rc = export_model.main(["--config-file", config, "--output", str(out), "--precision",
                            "bf16", "MODEL.WEIGHTS", ""])
    assert rc == 1 and os.listdir(out) == []
