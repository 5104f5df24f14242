"""tools/check_dataset.py: the whole dataset checked before training, as a command; lists the
files a training run would skip and exits 65, or 0 when all are good."""
import os
import subprocess
import sys

from conftest import ROOT, write_toy_coco
from solo_d2.utils.exit_status import EXIT_BAD_FILES

TOOL = os.path.join(ROOT, "tools", "check_dataset.py")


def _run(tmp_path, json_file, images, *extra):
    return subprocess.run(
        [sys.executable, TOOL, "--config-file", os.path.join(ROOT, "configs", "Base-SOLO.yaml"),
         *extra, "MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "2",
         "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "256",
         "DATASETS.REGISTER_COCO_INSTANCES", f"[['data', '{json_file}', '{images}']]",
         "DATASETS.TRAIN", "('data',)", "DATASETS.TEST", "('data',)"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)


def test_lists_every_bad_file_and_exits_65(tmp_path):
    json_file = write_toy_coco(str(tmp_path), num_images=6)
    images = str(tmp_path / "images")
    good = _run(tmp_path, json_file, images)
    assert good.returncode == 0, good.stderr[-3000:]
    assert "data: 0 of 6 images bad" in good.stdout
    cut = os.path.join(images, "0002.png")
    open(cut, "wb").write(open(cut, "rb").read()[:150])
    r = _run(tmp_path, json_file, images, "--split", "train")
    assert r.returncode == EXIT_BAD_FILES, r.stderr[-3000:]
    assert f"  bad: {cut}: cannot read image {cut!r}" in r.stdout
    assert "data: 1 of 6 images bad" in r.stdout
    assert "(test)" not in r.stdout  # --split train only


def test_reads_a_lazy_configs_datasets_and_mappers(tmp_path):
    json_file = write_toy_coco(str(tmp_path), num_images=4)
    images = str(tmp_path / "images")
    with open(os.path.join(images, "0001.png"), "wb") as f:
        f.write(b"not an image")
    r = subprocess.run(
        [sys.executable, TOOL, "--config-file", os.path.join(ROOT, "tests", "configs",
                                                             "tiny_SOLOv2_R50_1x.py"),
         f"dataloader.register_coco_instances=[[lazy_data,{json_file},{images}]]",
         "dataloader.train.dataset.names=lazy_data", "dataloader.test.dataset.names=lazy_data"],
        cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert r.returncode == EXIT_BAD_FILES, r.stderr[-3000:]
    assert "lazy_data (train): checking 4 images" in r.stdout
    assert "lazy_data (test): checking 4 images" in r.stdout
    assert r.stdout.count("lazy_data: 1 of 4 images bad") == 2
