"""Instance weights start a panoptic model: ``train_net.py --eval-only MODEL.WEIGHTS <an
instance SOLOv2 checkpoint>`` on a PanopticSOLO config loads every thing part (backbone, FPN,
SOLOv2 head) unchanged, leaves the stuff branch as initialised, and the log lists the stuff
branch's tensors as not found in the checkpoint (Detectron2's checkpointer)."""
import os
import subprocess
import sys

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from conftest import ROOT, write_toy_panoptic
from solo_d2.checkpoint import SOLOCheckpointer
from solo_d2.engine import get_solo_cfg

sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
from test_panoptic_train_net import CONFIG, TINY  # noqa: E402

INSTANCE_CONFIG = os.path.join(ROOT, "configs", "quick_schedules", "SOLOv2_R18_shapes.yaml")


def test_instance_weights_load_into_the_panoptic_model(tmp_path):
    opts = [*TINY, "MODEL.SOLO.NUM_CLASSES", "2", "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "3",
            "DATASETS.TRAIN", "()", "DATASETS.TEST", "()"]
    inst_cfg = get_solo_cfg(INSTANCE_CONFIG, _instance_opts(opts))
    torch.manual_seed(1)
    instance = build_model(inst_cfg)
    DetectionCheckpointer(instance, save_dir=str(tmp_path)).save("instance")
    weights = str(tmp_path / "instance.pth")

    # in-process: thing parts equal the checkpoint's, the stuff branch its own initialisation
    torch.manual_seed(2)
    pan = build_model(get_solo_cfg(CONFIG, opts))
    stuff_before = {k: v.clone() for k, v in pan.state_dict().items() if k.startswith("sem_seg")}
    SOLOCheckpointer(pan).load(weights, checkpointables=[])
    ours, theirs = pan.state_dict(), instance.state_dict()
    assert set(ours) - set(theirs) == set(stuff_before) and set(theirs) <= set(ours)
    for k, v in theirs.items():
        assert torch.equal(ours[k], v), k
    for k, v in stuff_before.items():
        assert torch.equal(ours[k], v), k

    # train_net.py --eval-only lists what was newly initialised
    info = write_toy_panoptic(str(tmp_path / "data"), num_images=2)
    cmd = [sys.executable, os.path.join(ROOT, "train_net.py"), "--config-file", CONFIG,
           "--eval-only", *opts[:-2], "MODEL.WEIGHTS", weights,
           "DATASETS.REGISTER_COCO_PANOPTIC", f"[['toy', {', '.join(map(repr, info['entry']))}]]",
           "DATASETS.TEST", "('toy',)", "OUTPUT_DIR", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(tmp_path), timeout=600,
                          env={**os.environ, "PYTHONPATH": ROOT})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    listed = log[log.index("not found in the checkpoint"):].split("\n\n")[0]
    assert "sem_seg_head.predictor.{bias, weight}" in listed
    assert "sem_seg_head.p2.0" in listed and "sem_seg_head.p5" in listed
    assert "head." not in listed.replace("sem_seg_head.", "")  # nothing of the things'


def _instance_opts(opts):
    """The panoptic options without the stuff branch's."""
    out, skip = [], False
    for i, o in enumerate(opts):
        if skip:
            skip = False
            continue
        if o.startswith("MODEL.SEM_SEG_HEAD."):
            skip = True
            continue
        out.append(o)
    return out
