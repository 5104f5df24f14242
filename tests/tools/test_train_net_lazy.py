"""train_net.py on LazyConfigs: a tiny config of every head (tests/configs/tiny_*.py: the
shipped recipe, shrunk) trains three iterations on the CPU and evaluates on a COCO json
registered from the command line; --eval-only reports AP; --resume continues; two CPU
processes with bf16 autocast run as a subprocess; bad values stop with clear errors."""
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, capture_logs, make_head_confident, write_toy_coco

sys.path.insert(0, ROOT)
import train_net  # noqa: E402

CONFIGS = os.path.join(ROOT, "tests", "configs")
HEADS = ["SOLO_R50_1x", "Decoupled_SOLO_R50_1x", "Decoupled_SOLO_Light_R50_3x", "SOLOv2_R50_1x",
         "SOLOv2_Light_R50_3x"]
DATASET = "solo_toy_lazy"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Command-line overrides naming a 4-image toy COCO json registered by name."""
    root = str(tmp_path_factory.mktemp("toy_lazy"))
    json_file = write_toy_coco(root, num_images=4)
    return [f"dataloader.register_coco_instances=[[{DATASET},{json_file},{root}/images]]",
            f"dataloader.train.dataset.names={DATASET}", f"dataloader.test.dataset.names={DATASET}"]


def _config(head: str) -> str:
    return os.path.join(CONFIGS, f"tiny_{head}.py")


def _run(argv):
    args = train_net.parse_args(argv)
    return train_net.main(args)


def _metrics(out: str):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("head", HEADS)
def test_every_head_trains_and_evaluates(head, toy, tmp_path, caplog):
    out = str(tmp_path / "out")
    with capture_logs(caplog, "detectron2"):
        res = _run(["--config-file", _config(head), *toy, f"train.output_dir={out}"])
    assert res is None  # training returns nothing; the evaluation ran in the EvalHook
    # the last line: wall time, iterations and speed (of the third: Detectron2 times
    # iterations from its third on)
    assert re.fullmatch(r"Run finished in \d+:\d\d of wall time since the process started "
                        r"\(data, training and evaluation included\); 3 iterations at "
                        r"[\d.]+ it/s \([\d.]+ s/it\)", caplog.messages[-1]), caplog.messages[-1]
    rows = [r for r in _metrics(out) if "total_loss" in r]
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert all(math.isfinite(r["total_loss"]) and r["loss_mask"] > 0 for r in rows)
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert os.path.isfile(os.path.join(out, "inference", "coco_instances_results.json"))
    # the config the run used, saved as Detectron2 saves LazyConfigs (yaml, reloadable)
    from detectron2.config import LazyConfig

    saved = LazyConfig.load(os.path.join(out, "config.yaml"))
    assert saved.train.max_iter == 3 and saved.dataloader.train.dataset.names == DATASET


def test_eval_only_reports_ap_and_resume_continues(toy, tmp_path):
    from detectron2.config import instantiate

    from solo_d2.engine import load_config

    out = str(tmp_path / "out")
    _run(["--config-file", _config("SOLO_R50_1x"), *toy, f"train.output_dir={out}"])
    # three iterations do not make a model that predicts: give its head confident masks
    cfg = load_config(_config("SOLO_R50_1x"), toy)
    model = instantiate(cfg.model)
    model.load_state_dict(torch.load(os.path.join(out, "model_final.pth"))["model"])
    make_head_confident(model, cls_bias=0.0)
    confident = str(tmp_path / "confident.pth")
    torch.save({"model": model.state_dict()}, confident)
    # the config the training run saved (yaml, as LazyConfig.save writes it) runs again
    res = _run(["--config-file", os.path.join(out, "config.yaml"), "--eval-only",
                f"train.output_dir={out}", f"train.init_checkpoint={confident}"])
    assert {"segm", "bbox"} <= set(res)
    for task in ("segm", "bbox"):
        assert math.isfinite(res[task]["AP"]) and 0 <= res[task]["AP"] <= 100, res

    _run(["--config-file", _config("SOLO_R50_1x"), "--resume", *toy, f"train.output_dir={out}",
          "train.max_iter=5"])
    iters = [r["iteration"] for r in _metrics(out) if "total_loss" in r]
    assert iters == [0, 1, 2, 3, 4]  # 3 and 4 appended by the resumed run


def test_two_cpu_processes_with_bf16_autocast(toy, tmp_path):
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file",
           _config("SOLOv2_R50_1x"), "--num-gpus", "2", "--dist-url", "auto", *toy,
           f"train.output_dir={out}", "train.amp.enabled=True", "train.amp.precision=bfloat16"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "World size: 2" in log and "Starting training from iteration 0" in log
    rows = [x for x in _metrics(out) if "total_loss" in x]
    assert len(rows) == 3 and all(math.isfinite(x["total_loss"]) for x in rows)
    assert os.path.isfile(os.path.join(out, "log.txt.rank1"))
    assert "Training under torch.bfloat16 autocast on cpu" in log


def test_clear_errors(toy, tmp_path):
    with pytest.raises(ValueError, match=r"has 3 classes but model.num_classes is 5"):
        _run(["--config-file", _config("SOLO_R50_1x"), *toy, f"train.output_dir={tmp_path}",
              "model.num_classes=5"])
    with pytest.raises(ValueError, match=r"key=value .* got \['MODEL.WEIGHTS', 'x.pth'\]"):
        _run(["--config-file", _config("SOLO_R50_1x"), "MODEL.WEIGHTS", "x.pth"])
    with pytest.raises(ValueError, match=r"head_in_features .*\['p7'\] are not outputs of the "
                                         r"backbone, which gives p2 \(32 channels, stride 4\)"):
        _run(["--config-file", _config("SOLO_R50_1x"), *toy, f"train.output_dir={tmp_path}",
              "model.head_in_features=[p2,p3,p4,p5,p7]"])
