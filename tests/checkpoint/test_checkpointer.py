"""The training checkpointer (solo_d2/checkpoint/checkpointer.py): saves are atomic (a kill
during a save leaves only complete files), resume finds the last complete checkpoint and
refuses a model of other shapes, through train_net.py."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser

from conftest import ROOT, TINY_OPTS, write_toy_coco
from solo_d2.checkpoint import SOLOCheckpointer
from solo_d2.checkpoint.checkpointer import atomic_write
from solo_d2.convert.safe_load import is_complete_torch_file

sys.path.insert(0, ROOT)
import train_net  # noqa: E402


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = str(tmp_path / "model.pth")
    torch.save({"v": 1}, path)

    def fail_midway(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail_midway)
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert os.listdir(tmp_path) == ["model.pth"]


def test_killed_while_saving_leaves_only_complete_checkpoints(tmp_path):
    """A process saving 40 MB checkpoints in a loop is SIGKILLed mid-run: every file under a
    checkpoint name is complete, and the next resume picks the last one and cleans up."""
    script = textwrap.dedent(f"""
        import torch
        from solo_d2.checkpoint import SOLOCheckpointer
        ck = SOLOCheckpointer(torch.nn.Linear(3200, 3200), save_dir={str(tmp_path)!r})
        for i in range(1000):
            ck.save(f"model_{{i:07d}}")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline and len(list(tmp_path.glob("model_*.pth"))) < 3:
        time.sleep(0.05)
    time.sleep(0.13)  # somewhere inside a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = sorted(tmp_path.glob("model_*.pth"))
    assert len(saved) >= 3
    assert all(is_complete_torch_file(str(p)) for p in saved)
    ck = SOLOCheckpointer(torch.nn.Linear(3200, 3200), save_dir=str(tmp_path))
    last = ck.get_checkpoint_file()
    assert last == str(saved[-1]) or last == str(saved[-2])  # killed before or after the tag
    ck.resume_or_load("", resume=True)
    assert not list(tmp_path.glob("*.incomplete"))


def test_resume_skips_a_checkpoint_cut_short(tmp_path):
    model = torch.nn.Linear(4, 4)
    ck = SOLOCheckpointer(model, save_dir=str(tmp_path))
    ck.save("model_0000004", iteration=4)
    # as an interrupted, non-atomic save (Detectron2's) leaves it
    torch.save({"model": model.state_dict(), "iteration": 9}, tmp_path / "model_0000009.pth")
    data = (tmp_path / "model_0000009.pth").read_bytes()
    (tmp_path / "model_0000009.pth").write_bytes(data[:100])
    (tmp_path / "last_checkpoint").write_text("model_0000009.pth")
    assert ck.has_checkpoint()
    assert ck.resume_or_load("", resume=True)["iteration"] == 4


def _train_args(json_file, images, name, out, num_classes, resume):
    register_coco_instances(name, {}, json_file, images)
    return default_argument_parser().parse_args([
        "--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"),
        *(["--resume"] if resume else []),
        *TINY_OPTS, "MODEL.SOLO.NUM_CLASSES", str(num_classes),
        "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()",
        "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()", "OUTPUT_DIR", str(out),
    ])


def test_resume_with_another_class_count_says_so(tmp_path):
    json3 = write_toy_coco(str(tmp_path / "d3"), num_images=4)
    out = tmp_path / "out"
    train_net.main(_train_args(json3, str(tmp_path / "d3" / "images"), "solo_test_resume3",
                               out, 3, resume=False))
    # the same images with a fourth category, and NUM_CLASSES changed to match it
    data = json.load(open(json3))
    data["categories"].append({"id": 4, "name": "star"})
    json4 = str(tmp_path / "d4.json")
    json.dump(data, open(json4, "w"))
    args = _train_args(json4, str(tmp_path / "d3" / "images"), "solo_test_resume4", out, 4,
                       resume=True)
    with pytest.raises(ValueError, match="Cannot resume.*predicts 3 classes, this config 4"):
        train_net.main(args)
