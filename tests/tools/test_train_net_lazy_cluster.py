"""What a long run needs, on a LazyConfig through train_net.py (the yaml path's tests are in
tests/engine/test_cluster_launch.py and tests/data/test_bad_files.py):

* the cluster settings of a LazyConfig (``train.cluster.*``) reach the launch, with the yaml
  defaults when a config has none;
* bad files in the middle of the training list are skipped, named and counted; evaluation
  leaves them out and says so; past ``dataloader.max_bad_files`` the run stops with their list;
* one training launched three ways: ``torchrun --nproc_per_node 2`` uninterrupted; two tasks
  with the variables ``srun`` sets, SIGTERM to both at an iteration (exit status 75, a
  checkpoint of that iteration); ``--num-gpus 2 --resume`` from it reaches the same losses and
  final weights as the uninterrupted run.
"""
import os
import signal
import sys
from datetime import timedelta

import pytest
import torch
from detectron2.config import LazyConfig

from conftest import ROOT, capture_logs, write_toy_coco
from launch_helpers import (
    finish,
    finish_all,
    losses,
    metrics,
    num_gpus,
    start,
    start_slurm_tasks,
    torchrun,
    wait_for_iteration,
)
from solo_d2.data.bad_files import TooManyBadFilesError
from solo_d2.engine import launch_options, load_config
from solo_d2.utils.exit_status import EXIT_BAD_FILES, EXIT_PREEMPTED

sys.path.insert(0, ROOT)
import train_net  # noqa: E402

TINY = os.path.join(ROOT, "tests", "configs", "tiny_SOLO_R50_1x.py")
ITERS = 6
BAD = ("0003.png", "0005.png")

# tiny_SOLO_R50_1x.py with the same images in the same order on every launch: one training
# size, no flips, a fixed seed
FIXED_ORDER = f"""
from detectron2.config import LazyConfig

cfg = LazyConfig.load({TINY!r})
augs = cfg.dataloader.train.mapper.augmentations
augs[0].short_edge_length = (128,)
cfg.dataloader.train.mapper.augmentations = [augs[0]]
cfg.dataloader.train.total_batch_size = 4
cfg.train.seed = 7
cfg.train.max_iter = {ITERS}
model, dataloader, optimizer, lr_multiplier, train = (
    cfg.model, cfg.dataloader, cfg.optimizer, cfg.lr_multiplier, cfg.train)
"""


def _data(root, name: str, spoil: bool = False):
    json_file = write_toy_coco(str(root), num_images=8)
    images = os.path.join(str(root), "images")
    if spoil:  # 0003.png cut short, 0005.png not an image at all
        with open(os.path.join(images, BAD[0]), "rb") as f:
            data = f.read()
        with open(os.path.join(images, BAD[0]), "wb") as f:
            f.write(data[:200])
        with open(os.path.join(images, BAD[1]), "wb") as f:
            f.write(b"not an image")
    return [f"dataloader.register_coco_instances=[[{name},{json_file},{images}]]",
            f"dataloader.train.dataset.names={name}"]


def test_cluster_settings_of_a_lazy_config_reach_the_launch(tmp_path):
    opts = launch_options(load_config(TINY, ["train.cluster.dead_process_timeout=30.0",
                                             "train.cluster.preempt_signals=[SIGUSR1]"]))
    assert opts == dict(device="cpu", timeout=timedelta(seconds=1800.0), heartbeat_period=5.0,
                        dead_process_timeout=30.0, preempt_signals=("SIGUSR1",))
    # a LazyConfig written without train.cluster gets the yaml defaults (config.py CLUSTER.*)
    cfg = load_config(TINY)
    del cfg.train["cluster"]
    assert launch_options(cfg)["preempt_signals"] == ("SIGTERM", "SIGUSR1")
    with pytest.raises(ValueError, match=r"train.cluster.collective_timeout=0: expected"):
        launch_options(load_config(TINY, ["train.cluster.collective_timeout=0"]))


def test_a_loader_the_trainer_cannot_wrap_is_a_clear_error():
    from solo_d2.engine import LazySOLOTrainer

    cfg = load_config(TINY, ["dataloader.train._target_=torch.utils.data.DataLoader"])
    with pytest.raises(ValueError, match=r"dataloader.train must call "
                       r"detectron2.data.build_detection_train_loader .*DataLoader"):
        LazySOLOTrainer.build_train_loader(cfg)


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("spoiled")
    return _data(root, "solo_lazy_bad_files", spoil=True), str(root / "images")


def test_bad_files_are_skipped_counted_and_left_out_of_evaluation(spoiled, tmp_path, caplog):
    opts, images = spoiled
    out = str(tmp_path / "out")
    with capture_logs(caplog):
        train_net.main(train_net.parse_args([
            "--config-file", TINY, *opts, "dataloader.test.dataset.names=solo_lazy_bad_files",
            "dataloader.max_bad_files=2", "train.max_iter=8", f"train.output_dir={out}"]))
    rows = [r for r in metrics(out) if "loss_cls" in r]
    assert [r["iteration"] for r in rows] == list(range(8))  # the run went on
    assert rows[-1]["[metric]bad_files"] == 2
    assert rows[-1]["[metric]skipped_samples"] >= 2
    assert metrics(out)[-1]["skipped_images/count"] == 2  # the evaluation after training
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Skipped ")]
    for name in BAD:
        path = os.path.join(images, name)
        assert sum(m.startswith(f"Skipped {path} at iteration") for m in skipped) == 1, skipped


def test_too_many_bad_files_stop_with_their_list(spoiled, tmp_path):
    with pytest.raises(TooManyBadFilesError) as e:
        train_net.main(train_net.parse_args([
            "--config-file", TINY, *spoiled[0], "dataloader.test.dataset.names=[]",
            "dataloader.max_bad_files=1", "train.max_iter=40",
            f"train.output_dir={tmp_path / 'out'}"]))
    assert e.value.exit_status == EXIT_BAD_FILES
    assert "more than dataloader.max_bad_files=1: at most 1" in str(e.value)
    assert "or raise dataloader.max_bad_files" in str(e.value)
    assert {os.path.basename(f) for f in e.value.files} == set(BAD)


@pytest.fixture(scope="module")
def fixed_order(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixed_order")
    config = root / "tiny_fixed_order.py"
    config.write_text(FIXED_ORDER)
    return ["--config-file", str(config), *_data(root, "solo_lazy_cluster"),
            "dataloader.test.dataset.names=[]", "train.log_period=1"]


def _weights(out_dir):
    return torch.load(os.path.join(str(out_dir), "model_final.pth"), weights_only=True)["model"]


def test_preempted_under_srun_resumed_under_num_gpus_equals_torchrun(fixed_order, tmp_path):
    reference = tmp_path / "reference"
    finish(start(tmp_path, [*fixed_order, f"train.output_dir={reference}"],
                 launcher=torchrun(2)))
    assert sorted(losses(reference)) == list(range(ITERS))

    out = tmp_path / "out"
    tasks = start_slurm_tasks(tmp_path, [*fixed_order, f"train.output_dir={out}"])
    wait_for_iteration(out, 1, tasks)
    for task in tasks:
        os.killpg(task.pid, signal.SIGTERM)
    logs = finish_all(tasks, status=EXIT_PREEMPTED)
    stopped = max(losses(out))
    assert stopped < ITERS - 1, "the run ended before the signal"
    assert os.path.isfile(out / f"model_{stopped:07d}.pth")
    assert f"iteration {stopped} is in" in logs[0]

    finish(start(tmp_path, [*num_gpus(2), "--resume", *fixed_order, f"train.output_dir={out}"]))
    assert losses(out) == losses(reference)  # every iteration, every loss, exactly
    a, b = _weights(out), _weights(reference)
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0
    # the resumed run's config, as Detectron2 saves LazyConfigs, keeps the cluster settings
    saved = LazyConfig.load(str(out / "config.yaml"))
    assert list(saved.train.cluster.preempt_signals) == ["SIGTERM", "SIGUSR1"]
