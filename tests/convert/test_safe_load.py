"""Checkpoints from elsewhere never run code (solo_d2/convert/safe_load.py): foreign
classes become inert stand-ins, code is refused unless trusted, every bad file is one error
line in the converter, and .pkl weights hold numpy arrays only."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import ROOT
from solo_d2.checkpoint import CheckpointReadError, SOLOCheckpointer, load_numpy_pickle, load_torch_file
from solo_d2.convert.safe_load import OpaqueObject

sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_mmdet_checkpoint  # noqa: E402

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


def _write_foreign_checkpoint(tmp_path, evil: bool, legacy: bool = False) -> str:
    """An mmengine-style checkpoint: tensors, plus objects of a module the reader lacks;
    ``legacy``: in torch's non-zip format, as mmdet's publish_model.py writes them."""
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
                    "extra": extra}}, {path!r}, _use_new_zipfile_serialization={not legacy})
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_foreign_objects_are_inert_stand_ins(tmp_path, legacy):
    ckpt = load_torch_file(_write_foreign_checkpoint(tmp_path, evil=False, legacy=legacy))
    assert torch.equal(ckpt["state_dict"]["w"], torch.arange(3.0))
    assert ckpt["meta"]["dataset_meta"]["classes"] == ("a", "b")
    hub = ckpt["message_hub"]["loss"]
    assert isinstance(hub, OpaqueObject) and hub.source_name == "foreign_mod.HistoryBuffer"
    assert hub.state == {"values": [1.0, 2.0]}
    assert "foreign_mod" not in sys.modules


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_code_in_a_checkpoint_never_runs(tmp_path, legacy):
    path = _write_foreign_checkpoint(tmp_path, evil=True, legacy=legacy)
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
