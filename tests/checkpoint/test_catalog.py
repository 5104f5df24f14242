"""The table of weights names (solo_d2/checkpoint/catalog.py) against its sources: every
shipped COCO config is in it; each published name resolves to the URL of mmdet's metafile for
the mmdet config whose architecture (read by the converter's own config reader) is the yaml's;
each config starts from the ImageNet weights its mmdet config names."""
import json
import os

import pytest
import yaml

import solo_d2
from solo_d2.checkpoint import COCO_MODELS, WeightsNameError, resolve_weights_name
from solo_d2.checkpoint.catalog import open_mmlab_names
from solo_d2.checkpoint.download import expected_hash_prefix
from solo_d2.convert.mmdet import load_mmdet_config_file, mmdet_config_to_d2, mmdet_configs_dir

# the yaml recipes (their LazyConfig twins, .py, build the same models)
COCO_CONFIGS = sorted(c for c in solo_d2.model_zoo.list_configs()
                      if "/" not in c and c.endswith(".yaml") and c != "Base-SOLO.yaml")


def _configs_dir() -> str:
    d = mmdet_configs_dir()
    if d is None:
        pytest.skip("mmdet's configs (mmdet/.mim/configs) are not installed")
    return d


def _metafile_models() -> dict:
    """mmdet config path (relative to configs/) -> its metafile entry, for SOLO and SOLOv2."""
    out = {}
    for family in ("solo", "solov2"):
        with open(os.path.join(_configs_dir(), family, "metafile.yml")) as f:
            for m in yaml.safe_load(f)["Models"]:
                out[m["Config"][len("configs/"):]] = m
    return out


def test_every_shipped_coco_config_is_in_the_table():
    assert sorted(COCO_MODELS) == COCO_CONFIGS
    published = [m for m in COCO_MODELS.values() if m.url]
    assert len(published) == 11


def test_every_metafile_checkpoint_has_its_name():
    """No SOLO / SOLOv2 weights mmdet publishes are missing from the table."""
    ours = {m.mmdet_config: m for m in COCO_MODELS.values() if m.mmdet_config}
    for mm_config, entry in _metafile_models().items():
        assert mm_config in ours, mm_config
        assert ours[mm_config].url == entry["Weights"], mm_config


@pytest.mark.parametrize("config", [c for c in COCO_CONFIGS if COCO_MODELS[c].url])
def test_name_resolves_to_the_metafile_url_of_the_same_architecture(config):
    model = COCO_MODELS[config]
    assert model.name == "solo_d2://" + config[: -len(".yaml")]
    url = resolve_weights_name(model.name)
    entry = _metafile_models()[model.mmdet_config]
    assert url == entry["Weights"]
    assert model.mask_ap == entry["Results"][0]["Metrics"]["mask AP"]
    assert expected_hash_prefix(url) is not None  # verifiable after download

    # the mmdet config of that URL, as the converter reads and translates it ...
    mm = load_mmdet_config_file(os.path.join(_configs_dir(), model.mmdet_config))
    theirs, _ = mmdet_config_to_d2(mm, model.mmdet_config)
    ours = solo_d2.model_zoo.get_config(config)
    # ... builds the yaml's network: head, depth, width, DCN, grids, every head setting
    s, t = ours.MODEL.SOLO, theirs.MODEL.SOLO
    assert (s.HEAD_NAME, s.NUM_GRIDS, s.DCN_TYPE, s.MASK_FEAT.DCN_TYPE) == (
        t.HEAD_NAME, t.NUM_GRIDS, t.DCN_TYPE, t.MASK_FEAT.DCN_TYPE)
    for key in ("DEPTH", "NUM_GROUPS", "WIDTH_PER_GROUP", "DEFORM_ON_PER_STAGE",
                "DEFORM_MODULATED", "RES2_OUT_CHANNELS"):
        assert ours.MODEL.RESNETS[key] == theirs.MODEL.RESNETS[key], (config, key)
    assert s == t
    assert ours.MODEL.FPN == theirs.MODEL.FPN


@pytest.mark.parametrize("config", COCO_CONFIGS)
def test_each_config_starts_from_the_imagenet_weights_its_mmdet_config_names(config):
    cfg = solo_d2.model_zoo.get_config(config)
    name = cfg.MODEL.WEIGHTS
    assert name.split("://")[0] in ("torchvision", "open-mmlab"), name
    url = resolve_weights_name(name)
    assert expected_hash_prefix(url) is not None, url
    model = COCO_MODELS[config]
    if cfg.MODEL.META_ARCHITECTURE == "PanopticSOLO":  # things of mmdet's SOLOv2 R50
        assert (name, cfg.MODEL.RESNETS.DEPTH) == ("torchvision://resnet50", 50)
        return
    if model.mmdet_config is None:  # SOLO R101: mmdet's SOLO R50 3x with depth 101
        assert (name, cfg.MODEL.RESNETS.DEPTH) == ("torchvision://resnet101", 101)
        return
    mm = load_mmdet_config_file(os.path.join(_configs_dir(), model.mmdet_config))
    assert mm["model"]["backbone"]["init_cfg"]["checkpoint"] == name


def test_imagenet_names_are_torchvisions_and_mmengines():
    import torchvision

    for depth in (18, 34, 50, 101):
        weights = torchvision.models.get_model_weights(f"resnet{depth}").IMAGENET1K_V1
        assert resolve_weights_name(f"torchvision://resnet{depth}") == weights.url
    mmengine = pytest.importorskip("mmengine")
    with open(os.path.join(os.path.dirname(mmengine.__file__), "hub", "openmmlab.json")) as f:
        table = json.load(f)
    for name, url in open_mmlab_names().items():
        assert table[name] == url
        assert resolve_weights_name("open-mmlab://" + name) == url


@pytest.mark.parametrize("name, message", [
    ("solo_d2://SOLOv2_R101_3x", r"'solo_d2://SOLOv2_R101_3x' has no published weights; "
                                 r"published: .*solo_d2://SOLOv2_R50_3x"),
    ("solo_d2://SOLOv3_R50", r"'solo_d2://SOLOv3_R50' is unknown; published: "),
    ("torchvision://vgg16",
     r"torchvision://vgg16: not a torchvision ResNet .*torchvision://resnet50"),
    ("open-mmlab://resnet50_caffe", r"unknown; known: open-mmlab://resnext101_64x4d"),
])
def test_unknown_names_say_which_exist(name, message):
    with pytest.raises(WeightsNameError, match=message):
        resolve_weights_name(name)


def test_model_zoo_doc_shows_the_table():
    """docs/MODEL_ZOO.md lists every config with its AP, name and URL as the table has them."""
    from conftest import ROOT

    text = open(os.path.join(ROOT, "docs", "MODEL_ZOO.md")).read()
    for config, m in COCO_MODELS.items():
        row = next(x for x in text.splitlines() if x.startswith(f"| `{config[:-5]}` |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[4] == (str(m.mask_ap) if m.mask_ap else "–"), row
        assert cells[5] == (f"`{m.name}`" if m.url else "–"), row
        assert cells[6] == f"`{solo_d2.model_zoo.get_config(config).MODEL.WEIGHTS}`", row
        if m.url:
            assert f"| `{m.name}` | {m.url} |" in text, m.name
