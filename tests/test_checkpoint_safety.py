"""Checkpoints from elsewhere never run code; bad checkpoint files give one error line;
saves are atomic, resume finds the last complete checkpoint and refuses other shapes."""
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import default_argument_parser

from conftest import ROOT, TINY_OPTS, write_toy_coco
from solo_d2.checkpoint import (
    CheckpointReadError,
    SOLOCheckpointer,
    load_numpy_pickle,
    load_torch_file,
)
from solo_d2.checkpoint.checkpointer import atomic_write
from solo_d2.checkpoint.safe_load import OpaqueObject, is_complete_torch_file

sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_mmdet_checkpoint  # noqa: E402
import train_net  # noqa: E402

# A module that exists only while the file is written: its class is then unknown to the reader,
# as mmengine's classes are where mmengine is not installed. Its Evil pickles as a call of
# os.system, the way a malicious checkpoint runs code.
_MODULE = '''
import os

class HistoryBuffer:
    def __init__(self):
        self.values = [1.0, 2.0]

class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))
'''


def _write_foreign_checkpoint(tmp_path, evil: bool) -> str:
    """An mmengine-style checkpoint: tensors, plus objects of a module the reader lacks."""
    (tmp_path / "foreign_mod.py").write_text(_MODULE)
    path = str(tmp_path / ("evil.pth" if evil else "mm.pth"))
    script = textwrap.dedent(f"""
        import sys, torch, numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        import foreign_mod
        meta = {{"cfg": "model = dict(type='SOLO')", "dataset_meta": {{"classes": ("a", "b")}}}}
        extra = foreign_mod.Evil({str(tmp_path / "pwned")!r}) if {evil} else None
        torch.save({{"state_dict": {{"w": torch.arange(3.0)}}, "meta": meta,
                    "message_hub": {{"loss": foreign_mod.HistoryBuffer(), "arr": np.ones(2)}},
                    "extra": extra}}, {path!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    return path


def test_foreign_objects_are_inert_stand_ins(tmp_path):
    ckpt = load_torch_file(_write_foreign_checkpoint(tmp_path, evil=False))
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))
    assert ckpt["meta"]["dataset_meta"]["classes"] == ("a", "b")
    hub = ckpt["message_hub"]["loss"]
    assert isinstance(hub, OpaqueObject) and hub.source_name == "foreign_mod.HistoryBuffer"
    assert hub.state == {"values": [1.0, 2.0]}
    assert "foreign_mod" not in sys.modules


def test_code_in_a_checkpoint_never_runs(tmp_path):
    path = _write_foreign_checkpoint(tmp_path, evil=True)
    with pytest.raises(CheckpointReadError, match="system.*could run code"):
        load_torch_file(path)
    assert not (tmp_path / "pwned").exists()


def _corrupt_inputs(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "meta": {}}, good)
    data = good.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "garbage.pth").write_bytes(os.urandom(3000))
    (tmp_path / "a_dir.pth").mkdir()
    return {
        "truncated": ("truncated.pth", "corrupt or cut short"),
        "empty": ("empty.pth", "empty"),
        "garbage": ("garbage.pth", "not a readable"),
        "directory": ("a_dir.pth", "is a directory"),
        "missing": ("missing.pth", "no such file"),
    }


def test_converter_gives_one_error_line_for_bad_files(tmp_path, capsys):
    for case, (name, reason) in _corrupt_inputs(tmp_path).items():
        rc = convert_mmdet_checkpoint.main([str(tmp_path / name), str(tmp_path / "out.pth")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 1, case
        assert len(err) == 1 and err[0].startswith("error: ") and name in err[0], (case, err)
        assert reason in err[0], (case, err)
    assert not (tmp_path / "out.pth").exists()


def test_converter_refuses_code_unless_trusted(tmp_path, capsys):
    path = _write_foreign_checkpoint(tmp_path, evil=True)
    assert convert_mmdet_checkpoint.main([path, str(tmp_path / "out.pth")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could run code" in err[0] and "--trusted" in err[0]
    assert not (tmp_path / "pwned").exists()


def test_numpy_only_pickles(tmp_path):
    ok = tmp_path / "w.pkl"
    ok.write_bytes(pickle.dumps({"model": {"a": np.arange(4.0)}, "__author__": "x"}))
    assert np.array_equal(load_numpy_pickle(str(ok))["model"]["a"], np.arange(4.0))
    # os.system("touch pwned") as a pickle: GLOBAL posix.system, a string, REDUCE
    evil = tmp_path / "evil.pkl"
    marker = str(tmp_path / "pwned")
    evil.write_bytes(b"cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    with pytest.raises(CheckpointReadError, match="posix.system"):
        load_numpy_pickle(str(evil))
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x93garbage")
    with pytest.raises(CheckpointReadError, match="garbage.pkl: corrupt pickle"):
        load_numpy_pickle(str(garbage))
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointReadError, match="posix.system"):
        SOLOCheckpointer(model).load(str(evil))
    assert not os.path.exists(marker)


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
