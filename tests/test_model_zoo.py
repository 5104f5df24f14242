"""Configs by name from any folder (solo_d2.model_zoo), and the README's Python snippet run as
written from another folder on this CPU-only machine."""
import os
import re
import subprocess
import sys

import pytest

import solo_d2
from conftest import ROOT


def test_every_config_is_shipped_and_found_by_name():
    names = solo_d2.model_zoo.list_configs()
    root = os.path.join(ROOT, "configs")
    on_disk = sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root) for f in files if f.endswith((".yaml", ".py"))
    )
    # the LazyConfig pieces under common/ are not recipes
    assert names == [n for n in on_disk if not n.startswith("common" + os.sep)]
    assert any(n.startswith("common" + os.sep) for n in on_disk)
    cfg = solo_d2.model_zoo.get_config("quick_schedules/SOLOv2_R18_shapes.yaml")
    assert cfg.MODEL.SOLO.HEAD_NAME == "SOLOV2Head" and cfg.MODEL.RESNETS.DEPTH == 18
    with pytest.raises(RuntimeError, match="'nope.yaml' is not a solo_d2 config.*SOLO_R50_1x"):
        solo_d2.model_zoo.get_config_file("nope.yaml")


def _readme_python_snippet() -> str:
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README has no python snippet"
    return blocks[0]


def test_readme_snippet_runs_from_another_folder(tmp_path):
    snippet = _readme_python_snippet()
    check = "\nassert type(model).__name__ == 'SOLO', model\nprint('built', cfg.MODEL.DEVICE)\n"
    r = subprocess.run([sys.executable, "-c", snippet + check], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "built cpu" in r.stdout or "built cuda" in r.stdout


def test_lazy_config_by_name_from_another_folder(tmp_path):
    """model_zoo.get_config("X.py") returns the LazyConfig, as Detectron2's does for its .py
    configs, from any folder; its relative imports of common/ pieces resolve."""
    script = (
        "import torch, solo_d2\n"
        "from detectron2.config import instantiate\n"
        "from omegaconf import DictConfig\n"
        "cfg = solo_d2.model_zoo.get_config('SOLOv2_R50_1x.py')\n"
        "assert isinstance(cfg, DictConfig), type(cfg)\n"
        "with torch.device('meta'):\n"
        "    model = instantiate(cfg.model)\n"
        "piece = solo_d2.model_zoo.get_config('common/models/solo.py')\n"
        "names = solo_d2.model_zoo.list_configs()\n"
        "print(type(model).__name__, type(model.head).__name__, cfg.train.max_iter,\n"
        "      sorted(piece), 'SOLOv2_ViTDet_B_LSJ.py' in names,\n"
        "      any(n.startswith('common') for n in names))\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[-2] == "SOLO SOLOV2Head 87960 ['model'] True False", r.stdout


# ------------------------------------------------------------------ published weights by name
def test_checkpoint_url_of_each_config_is_its_weights_name():
    from solo_d2.checkpoint import resolve_weights_name

    url = solo_d2.model_zoo.get_checkpoint_url("SOLOv2_R50_3x.yaml")
    assert url == ("https://download.openmmlab.com/mmdetection/v2.0/solov2/solov2_r50_fpn_3x_coco/"
                   "solov2_r50_fpn_3x_coco_20220512_125856-fed092d4.pth")
    assert resolve_weights_name("solo_d2://SOLOv2_R50_3x") == url
    with pytest.raises(RuntimeError, match="'SOLOv2_R101_3x.yaml' has no published weights; "
                       "configs that have: SOLO_R50_1x.yaml"):
        solo_d2.model_zoo.get_checkpoint_url("SOLOv2_R101_3x.yaml")


def test_get_trained_builds_the_published_model_offline_from_the_cache(tmp_path, monkeypatch):
    """model_zoo.get(..., trained=True) with mmdet's full-size SOLOv2-light R18 (random weights,
    saved as mmdet publishes) where the cache keeps its URL's file, as on a machine without
    network: the converted weights and COCO's class names, no request to the mirror."""
    import torch
    from detectron2.data import MetadataCatalog

    from conftest import require_mmdet
    from solo_d2.checkpoint import (COCO_MODELS, cached_path, convert_state_dict,
                                    resolve_weights_name)
    from solo_d2.checkpoint.download import MIRROR_ENV
    from solo_d2.convert.mmdet import load_mmdet_config_file, mmdet_configs_dir
    from weights_server import WeightsServer

    ref = require_mmdet()
    from mmengine.config import ConfigDict

    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    mm = load_mmdet_config_file(os.path.join(
        mmdet_configs_dir(), COCO_MODELS["SOLOv2_Light_R18_3x.yaml"].mmdet_config))
    mm["model"]["backbone"]["init_cfg"] = None
    mmdet_model = ref.import_mmdet().build(ConfigDict(mm["model"]))
    coco = list(MetadataCatalog.get("coco_2017_val").thing_classes)
    dst = cached_path(solo_d2.model_zoo.get_checkpoint_url("SOLOv2_Light_R18_3x.yaml"))
    os.makedirs(os.path.dirname(dst))
    ref.save_mmdet_checkpoint(mmdet_model, mm, dst, mmdet2=True, classes=coco, published=True)

    # and the ImageNet start of the same config (trained=False): torchvision's ResNet-18
    import torchvision
    tv = torchvision.models.resnet18(weights=None).state_dict()
    tv_dst = cached_path(resolve_weights_name("torchvision://resnet18"))
    os.makedirs(os.path.dirname(tv_dst))
    torch.save(tv, tv_dst)

    with WeightsServer() as server:
        monkeypatch.setenv(MIRROR_ENV, server.base)
        model = solo_d2.model_zoo.get("SOLOv2_Light_R18_3x.yaml", trained=True)
        untrained = solo_d2.model_zoo.get("SOLOv2_Light_R18_3x.yaml")
        assert sum(server.requests.values()) == 0
    assert type(model).__name__ == "SOLO" and model.thing_classes == coco
    expected = convert_state_dict(mmdet_model.state_dict(), "SOLOV2Head", [2, 3, 4, 5])
    ours = model.state_dict()
    assert set(expected) == set(ours) - {"pixel_mean", "pixel_std"}
    for k, v in expected.items():
        assert torch.equal(ours[k], v), k
    assert untrained.thing_classes == coco  # the config's DATASETS.TEST: coco_2017_val
    assert torch.equal(untrained.state_dict()["backbone.bottom_up.stem.conv1.weight"],
                       tv["conv1.weight"])
