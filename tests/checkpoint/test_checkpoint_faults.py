"""The checkpointer on a full disk and in an output folder holding files it did not write, the
first through train_net.py as users run it:

* a save that hits ENOSPC (the kernel's own: the temporary file is /dev/full) stops training
  with exit status 74 and a message saying what happened, the previous checkpoint stays
  loadable and named by last_checkpoint, nothing is left half-written;
* --resume in a folder with only a converted model and downloaded weights (even one named
  model_final.pth) starts from MODEL.WEIGHTS at iteration 0 and says so.
"""
import errno
import os

import pytest
import torch

from conftest import write_toy_coco
from launch_helpers import finish, losses, start, train_opts
from solo_d2.checkpoint import SOLOCheckpointer
from solo_d2.checkpoint.checkpointer import (
    CheckpointWriteError,
    atomic_write,
    is_run_checkpoint,
)
from solo_d2.utils.exit_status import EXIT_CHECKPOINT_WRITE


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    return write_toy_coco(str(root), num_images=4), str(root / "images")


def test_atomic_write_reports_the_errno_behind_torch_save(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"v": 1}, path)
    os.symlink("/dev/full", f"{path}.incomplete")  # writes get ENOSPC from the kernel
    with pytest.raises(OSError) as info:
        atomic_write(str(path), lambda f: torch.save({"v": torch.zeros(10 ** 6)}, f))
    assert info.value.errno == errno.ENOSPC
    assert torch.load(path, weights_only=True) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["model.pth"]  # the link is gone, /dev/full is not
    assert os.path.exists("/dev/full")


def test_a_failed_save_says_what_happened(tmp_path):
    ck = SOLOCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    ck.save("model_0000001", iteration=1)
    os.symlink("/dev/full", tmp_path / "model_0000003.pth.incomplete")
    with pytest.raises(CheckpointWriteError) as info:
        ck.save("model_0000003", iteration=3)
    message = str(info.value)
    assert "No space left on device (ENOSPC)" in message
    assert f"previous checkpoint {tmp_path / 'model_0000001.pth'} is intact" in message
    assert info.value.exit_status == EXIT_CHECKPOINT_WRITE
    # deferred: kept for the trainer's hook, which stops every process together
    deferred = SOLOCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path),
                                defer_write_errors=True)
    os.symlink("/dev/full", tmp_path / "model_0000005.pth.incomplete")
    deferred.save("model_0000005", iteration=5)
    assert "ENOSPC" in deferred.write_error
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000001.pth"


def test_disk_full_during_training_keeps_the_previous_checkpoint(toy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # checkpoints after iterations 1 and 3 (period 2); the second one cannot be written
    os.symlink("/dev/full", out / "model_0000003.pth.incomplete")
    log = finish(start(tmp_path, ["--num-gpus", "1", *train_opts(
        *toy, out, iters=6, extra=["SOLVER.CHECKPOINT_PERIOD", "2"])]),
        status=EXIT_CHECKPOINT_WRITE)
    assert ("Could not write the checkpoint " + str(out / "model_0000003.pth") +
            ": No space left on device (ENOSPC)") in log
    assert "model_0000001.pth is intact" in log
    assert sorted(p for p in os.listdir(out) if ".pth" in p) == ["model_0000001.pth"]
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    assert is_run_checkpoint(str(out / "model_0000001.pth"))
    data = torch.load(out / "model_0000001.pth", weights_only=True)
    assert data["iteration"] == 1 and "optimizer" in data["trainer"]["_trainer"]
    assert max(losses(out)) == 3  # stopped after the iteration whose save failed


def test_resume_never_starts_from_files_the_trainer_did_not_write(toy, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # a converted mmdet model and downloaded weights, one of them under the trainer's
    # final name: model weights only, no iteration or optimizer
    marker = {"head.conv_cls.bias": torch.full((3,), 7.0)}
    torch.save({"model": marker}, out / "solo_r18_converted.pth")
    torch.save({"model": marker, "iteration": 90000}, out / "model_final.pth")
    log = finish(start(tmp_path, ["--resume", *train_opts(*toy, out, iters=2)]))
    assert (f"--resume: no checkpoint of this run in {out} (model_NNNNNNN.pth or "
            "model_final.pth with the trainer's iteration and optimizer state); not resuming "
            "from model_final.pth, solo_r18_converted.pth, which the trainer did not write. "
            "Starting from MODEL.WEIGHTS (empty: random initialisation) at iteration 0.") in log
    assert "Starting training from iteration 0" in log
    assert sorted(losses(out)) == [0, 1]
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["iteration"] == 1
    assert final["model"]["head.conv_cls.bias"].abs().max() < 6.0  # never loaded 7.0
