"""MODEL.WEIGHTS by URL, by name and as a local foreign file, through SOLOCheckpointer (what
train_net.py, demo.py, tools/export_model.py and SOLOPredictor load with): mmdet checkpoints
and torchvision ResNets are downloaded once, converted once (cached beside) and load the same
weights as the offline converters give."""
import os

import numpy as np
import pytest
import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.file_io import PathManager as D2PathManager

from conftest import capture_logs, require_mmdet, tiny_cfg
from solo_d2.checkpoint import (
    SOLOCheckpointer,
    WeightsDownloadError,
    cached_path,
    convert_mmdet_checkpoint,
    convert_torchvision_resnet,
    mmdet_config_to_d2,
    resolve_weights_name,
)
from solo_d2.checkpoint.download import MIRROR_ENV
from solo_d2.engine import SOLOPredictor
from weights_server import WeightsServer, sha256_name

CLASSES = ("rect", "ellipse", "triangle", "star")


@pytest.fixture(scope="module")
def mmdet_file(tmp_path_factory):
    """A tiny random SOLOv2 saved as mmdet publishes checkpoints (2.x meta with the config and
    CLASSES, numpy values in meta, torch's legacy format), named with its true SHA-256 prefix.
    Returns (path, the Detectron2 config that rebuilds it)."""
    ref = require_mmdet()
    mm = ref.small_solo_config("SOLOV2Head", mmdet2=True)
    model = ref.build_mmdet_model(mm, seed=3)
    d = tmp_path_factory.mktemp("mmdet")
    tmp = str(d / "tmp.pth")
    ref.save_mmdet_checkpoint(model, mm, tmp, mmdet2=True, classes=list(CLASSES))
    ckpt = torch.load(tmp, weights_only=False)
    ckpt["meta"].update(seed=np.int64(7), hook_msgs={"best_score": np.float64(0.25)})
    torch.save(ckpt, tmp, _use_new_zipfile_serialization=False)
    data = open(tmp, "rb").read()
    path = str(d / sha256_name("tiny_solov2_r18_fpn_1x_coco_20240101_000000", data))
    os.rename(tmp, path)
    cfg, _ = mmdet_config_to_d2(mm)
    cfg.MODEL.DEVICE = "cpu"
    return path, cfg


def _expected_state(path):
    """The converted weights, by the offline converter (tools/convert_mmdet_checkpoint.py's)."""
    out, _, classes = convert_mmdet_checkpoint(path)
    assert classes == list(CLASSES)
    return out["model"]


def _assert_loaded(model, expected):
    state = model.state_dict()
    for k, v in expected.items():
        assert torch.equal(state[k], v), k


def test_mmdet_url_downloaded_converted_cached_and_loaded_once(mmdet_file, weights_cache, caplog):
    path, cfg = mmdet_file
    expected = _expected_state(path)
    name = os.path.basename(path)
    with WeightsServer() as server:
        url = server.add("/v2.0/solov2/" + name, open(path, "rb").read())
        with capture_logs(caplog):
            model = build_model(cfg)
            extra = SOLOCheckpointer(model).load(url)
        _assert_loaded(model, expected)
        assert extra["thing_classes"] == list(CLASSES)
        raw = weights_cache / "v2.0" / "solov2" / name
        converted = raw.with_name(name[: -len(".pth")] + ".solo_d2-v1.pth")
        assert raw.is_file() and converted.is_file()
        assert any("Converted" in r.getMessage() for r in caplog.records)
        assert server.requests["/v2.0/solov2/" + name] == 1

        # the second use neither downloads nor converts: the converted file is read
        caplog.clear()
        mtime = converted.stat().st_mtime_ns
        by_url = cfg.clone()
        by_url.MODEL.WEIGHTS = url
        with capture_logs(caplog):
            predictor = SOLOPredictor(by_url)
        assert server.requests["/v2.0/solov2/" + name] == 1
    assert converted.stat().st_mtime_ns == mtime
    assert not any("Convert" in r.getMessage() or "Download" in r.getMessage()
                   for r in caplog.records)
    _assert_loaded(predictor.model, expected)
    assert predictor.thing_classes == list(CLASSES)


def test_local_mmdet_file_is_recognised_and_converted_on_load(mmdet_file, weights_cache):
    path, cfg = mmdet_file
    model = build_model(cfg)
    extra = SOLOCheckpointer(model).load(path)
    _assert_loaded(model, _expected_state(path))
    assert extra["thing_classes"] == list(CLASSES)
    assert not os.path.exists(weights_cache)  # a local file is converted in memory, nothing cached


def test_published_name_resolves_offline_from_a_dropped_file_with_coco_names(mmdet_file, weights_cache):
    """A file put where the cache keeps solo_d2://SOLOv2_R50_3x is used without a network;
    weights whose meta names no classes get the table's dataset's (COCO's)."""
    path, _ = mmdet_file
    ckpt = torch.load(path, weights_only=False)
    del ckpt["meta"]["CLASSES"]
    url = resolve_weights_name("solo_d2://SOLOv2_R50_3x")
    dst = cached_path(url)
    os.makedirs(os.path.dirname(dst))
    torch.save(ckpt, dst)
    local = D2PathManager.get_local_path("solo_d2://SOLOv2_R50_3x")  # Detectron2's own
    assert local.endswith("solov2_r50_fpn_3x_coco_20220512_125856-fed092d4.solo_d2-v1.pth")
    converted = torch.load(local, weights_only=True)
    coco = MetadataCatalog.get("coco_2017_val").thing_classes
    assert converted["thing_classes"] == coco and len(coco) == 80


def _torchvision_resnet18_state():
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
    return net.state_dict()


def _assert_backbone_is(model, tv_state):
    ours = model.state_dict()
    for k, v in convert_torchvision_resnet(tv_state).items():
        assert np.array_equal(ours["backbone.bottom_up." + k].numpy(), v), k


def test_torchvision_name_from_a_dropped_file_and_a_local_copy(weights_cache, tmp_path, monkeypatch):
    tv = _torchvision_resnet18_state()
    url = resolve_weights_name("torchvision://resnet18")
    assert url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    dropped = cached_path(url)
    os.makedirs(os.path.dirname(dropped))
    torch.save(tv, dropped)
    with WeightsServer() as server:  # a mirror that must not be asked
        monkeypatch.setenv(MIRROR_ENV, server.base)
        model = build_model(tiny_cfg())
        SOLOCheckpointer(model).load("torchvision://resnet18")
        assert sum(server.requests.values()) == 0
    _assert_backbone_is(model, tv)
    assert os.path.isfile(dropped[: -len(".pth")] + ".solo_d2-v1.pkl")
    # Detectron2's own checkpointer reads the converted file through the name too
    model = build_model(tiny_cfg())
    DetectionCheckpointer(model).load("torchvision://resnet18")
    _assert_backbone_is(model, tv)

    local = tmp_path / "offline" / "resnet18-f37072fd.pth"
    local.parent.mkdir()
    torch.save(tv, local)
    model = build_model(tiny_cfg())
    SOLOCheckpointer(model).load(str(local))
    _assert_backbone_is(model, tv)


def test_torchvision_name_whose_download_does_not_match_its_hash(weights_cache, monkeypatch):
    """Anything but torchvision's own file under resnet18-f37072fd.pth is refused."""
    with WeightsServer() as server:
        server.add("/download.pytorch.org/models/resnet18-f37072fd.pth", b"not resnet18")
        monkeypatch.setenv(MIRROR_ENV, server.base)
        with pytest.raises(WeightsDownloadError, match=r"https://download\.pytorch\.org/models/"
                           r"resnet18-f37072fd\.pth .*its name says f37072fd"):
            SOLOCheckpointer(build_model(tiny_cfg())).load("torchvision://resnet18")
    assert not os.path.exists(cached_path(resolve_weights_name("torchvision://resnet18")))


def test_fine_tuning_from_published_weights_with_another_class_count(mmdet_file, weights_cache):
    """GETTING_STARTED's fine-tuning: MODEL.WEIGHTS of a converted checkpoint into a model of
    another class count, as the trainer loads it (resume=False): every tensor but the
    category layer is loaded, that one keeps its initialisation (Detectron2's behaviour)."""
    path, cfg = mmdet_file
    cfg = cfg.clone()
    cfg.MODEL.SOLO.NUM_CLASSES = 2
    model = build_model(cfg)
    init = model.head.conv_cls.weight.detach().clone()
    SOLOCheckpointer(model, save_dir=str(weights_cache / "out")).resume_or_load(path, resume=False)
    expected = _expected_state(path)
    _assert_loaded(model, {k: v for k, v in expected.items() if not k.startswith("head.conv_cls")})
    assert expected["head.conv_cls.weight"].shape[0] == 4
    assert torch.equal(model.head.conv_cls.weight, init)
