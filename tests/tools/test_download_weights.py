"""tools/download_weights.py: pre-downloads (and converts) weights into the cache, or says
where a file goes for a machine without network."""
import importlib.util
import os

import torch
import torchvision

from conftest import ROOT
from solo_d2.checkpoint.download import MIRROR_ENV
from weights_server import WeightsServer, sha256_name


def _tool():
    spec = importlib.util.spec_from_file_location(
        "download_weights", os.path.join(ROOT, "tools", "download_weights.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_where_names_the_url_and_the_path_without_downloading(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    assert _tool().main(["--where", "solo_d2://SOLOv2_R50_3x", "torchvision://resnet50"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "solo_d2://SOLOv2_R50_3x",
        "  download: https://download.openmmlab.com/mmdetection/v2.0/solov2/solov2_r50_fpn_3x_coco/"
        "solov2_r50_fpn_3x_coco_20220512_125856-fed092d4.pth",
        f"  put it at: {tmp_path}/cache/mmdetection/v2.0/solov2/solov2_r50_fpn_3x_coco/"
        "solov2_r50_fpn_3x_coco_20220512_125856-fed092d4.pth",
        "torchvision://resnet50",
        "  download: https://download.pytorch.org/models/resnet50-0676ba61.pth",
        f"  put it at: {tmp_path}/cache/models/resnet50-0676ba61.pth",
    ]
    assert not (tmp_path / "cache" / "models").exists()


def test_download_converts_once_and_bad_names_are_error_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    f = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), f)
    data = f.read_bytes()
    tool = _tool()
    with WeightsServer() as server:
        name = sha256_name("resnet18", data)
        url = server.add("/models/" + name, data)
        assert tool.main([url]) == 0
        assert tool.main([url]) == 0
        assert server.requests["/models/" + name] == 1
    out = capsys.readouterr().out.splitlines()
    converted = f"{tmp_path}/cache/models/{name[:-4]}.solo_d2-v1.pkl"
    assert out == [f"{url}: {converted}"] * 2
    assert tool.main(["torchvision://vgg16", "pretrained/R-50.pkl"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: torchvision://vgg16: not a torchvision ResNet")
    assert err[1].startswith("error: 'pretrained/R-50.pkl': not a weights name")
