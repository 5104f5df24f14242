"""Checkpoint converters: safe mmdet config parsing, key mapping, refusals, torchvision ResNets."""
import glob
import importlib.util
import os
import pickle

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import solo_d2
from conftest import require_mmdet
from solo_d2.checkpoint import (
    HEAD_KEY_TABLE,
    MMDetConversionError,
    convert_mmdet_checkpoint,
    convert_state_dict,
    convert_torchvision_resnet,
    load_mmdet_config_file,
    load_thing_classes,
    mmdet_config_to_d2,
    parse_mmdet_config,
    save_d2_pickle,
    verify_loadable,
)

from conftest import ROOT  # noqa: E402


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _mmdet_solo_configs(family: str = "solo"):
    """mmdet's installed config folder of a family ("solo", "solov2"), or None."""
    spec = importlib.util.find_spec("mmdet")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = os.path.join(spec.submodule_search_locations[0], ".mim", "configs", family)
    return d if os.path.isdir(d) else None


def _plain(x):
    """Tuples -> lists, recursively, to compare with mmengine's parsed configs."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


# ------------------------------------------------------------------ safe config parsing
def test_parse_literals_names_and_arithmetic():
    text = """
import os  # ignored
base = 'data/'
norm = dict(mean=[1.0, 2.0, 3.0], std=[4, 5, 6], to_rgb=True)
pipe = [dict(type='Normalize', **norm), dict(type='Pad', size_divisor=2 ** 5)]
model = dict(type='SOLO', n=-3 + 4 * 2, path=base + 'x.json', t=(1, 2), d={'a': 1, **norm})
first = pipe[0]['mean'][1]
"""
    cfg = parse_mmdet_config(text)
    assert cfg["pipe"][0] == {"type": "Normalize", "mean": [1.0, 2.0, 3.0], "std": [4, 5, 6],
                              "to_rgb": True}
    assert cfg["pipe"][1]["size_divisor"] == 32
    assert cfg["model"]["n"] == 5 and cfg["model"]["path"] == "data/x.json"
    assert cfg["model"]["t"] == (1, 2) and cfg["model"]["d"]["mean"] == [1.0, 2.0, 3.0]
    assert cfg["first"] == 2.0


@pytest.mark.parametrize(
    "text",
    [
        "x = __import__('os').system('echo pwned')",
        "x = open('/etc/passwd').read()",
        "x = (lambda: 1)()",
        "for i in range(3):\n    x = i",
        "x = dict(a=1).__class__",
        "x = [i for i in range(3)]",
        "x = undefined_name",
    ],
)
def test_parse_refuses_code(text, capfd):
    with pytest.raises(MMDetConversionError):
        parse_mmdet_config(text, source="evil.py")
    assert "pwned" not in capfd.readouterr().out


def test_base_inheritance_merge_delete_and_references(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text(
        "backend_args = None\n"
        "model = dict(type='SOLO', backbone=dict(type='ResNet', depth=50, "
        "norm_cfg=dict(type='BN', requires_grad=True)), neck=dict(type='FPN', out_channels=256))\n"
        "pipeline = [dict(type='Resize', scale=(1333, 800))]\n"
    )
    (tmp_path / "b.py").write_text(
        "_base_ = ['./sub/a.py']\n"
        "model = dict(backbone=dict(depth=101, norm_cfg=dict(_delete_=True, type='GN', "
        "num_groups=32)))\n"
        "pipe = [dict(type='Load', backend_args={{_base_.backend_args}}), "
        "{{_base_.pipeline}}[0]]\n"
    )
    (tmp_path / "c.py").write_text(
        "_base_ = './b.py'\nmodel = dict(neck=dict(_delete_=True, type='PAFPN'))\n"
    )
    cfg = load_mmdet_config_file(str(tmp_path / "c.py"))
    assert cfg["model"]["backbone"] == {"type": "ResNet", "depth": 101,
                                        "norm_cfg": {"type": "GN", "num_groups": 32}}
    assert cfg["model"]["neck"] == {"type": "PAFPN"}
    assert cfg["pipe"] == [{"type": "Load", "backend_args": None},
                           {"type": "Resize", "scale": (1333, 800)}]
    assert "_base_" not in cfg


@pytest.mark.parametrize("family", ["solo", "solov2"])
def test_mmdet_solo_configs_parse_like_mmengine(family):
    """Our ast reading of mmdet's own SOLO configs (with _base_) equals mmengine's executing one."""
    d = _mmdet_solo_configs(family)
    if d is None:
        pytest.skip("mmdet's configs are not installed")
    mmengine_config = pytest.importorskip("mmengine.config")
    files = sorted(glob.glob(os.path.join(d, "*.py")))
    assert files
    for f in files:
        ours = load_mmdet_config_file(f)
        ref = mmengine_config.Config.fromfile(f).to_dict()
        for key in ("model", "test_dataloader", "test_pipeline"):
            if key in ref:
                assert _plain(ours[key]) == _plain(ref[key]), (f, key)


# Published mmdet config -> the yaml in configs/ that reproduces it.
PUBLISHED = {
    "solo_r50_fpn_1x_coco.py": "SOLO_R50_1x.yaml",
    "decoupled-solo_r50_fpn_1x_coco.py": "Decoupled_SOLO_R50_1x.yaml",
    "decoupled-solo-light_r50_fpn_3x_coco.py": "Decoupled_SOLO_Light_R50_3x.yaml",
    "solov2/solov2_r50_fpn_1x_coco.py": "SOLOv2_R50_1x.yaml",
    "solov2/solov2_r50_fpn_ms-3x_coco.py": "SOLOv2_R50_3x.yaml",
    "solov2/solov2_r101_fpn_ms-3x_coco.py": "SOLOv2_R101_3x.yaml",
    "solov2/solov2_r101-dcn_fpn_ms-3x_coco.py": "SOLOv2_R101_DCN_3x.yaml",
    "solov2/solov2_x101-dcn_fpn_ms-3x_coco.py": "SOLOv2_X101_DCN_3x.yaml",
    "solov2/solov2-light_r18_fpn_ms-3x_coco.py": "SOLOv2_Light_R18_3x.yaml",
    "solov2/solov2-light_r34_fpn_ms-3x_coco.py": "SOLOv2_Light_R34_3x.yaml",
    "solov2/solov2-light_r50_fpn_ms-3x_coco.py": "SOLOv2_Light_R50_3x.yaml",
    "solov2/solov2-light_r50-dcn_fpn_ms-3x_coco.py": "SOLOv2_Light_R50_DCN_3x.yaml",
}


def _repo_cfg(name: str):
    cfg = get_cfg()
    solo_d2.add_solo_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", name))
    return cfg


@pytest.mark.parametrize("mm_name", sorted(PUBLISHED))
def test_published_configs_translate_to_our_yamls(mm_name):
    family, _, name = mm_name.rpartition("/")
    d = _mmdet_solo_configs(family or "solo")
    if d is None:
        pytest.skip("mmdet's configs are not installed")
    cfg, stages = mmdet_config_to_d2(load_mmdet_config_file(os.path.join(d, name)))
    assert stages == [2, 3, 4, 5]
    ref = _repo_cfg(PUBLISHED[mm_name])
    assert cfg.MODEL.SOLO == ref.MODEL.SOLO
    # the whole model section (backbone depth/width/DCN, FPN, ...) but the start weights
    cfg.MODEL.WEIGHTS = ref.MODEL.WEIGHTS
    assert cfg.MODEL == ref.MODEL
    for a, b in [
        (cfg.MODEL.PIXEL_MEAN, ref.MODEL.PIXEL_MEAN),
        (cfg.MODEL.PIXEL_STD, ref.MODEL.PIXEL_STD),
        (cfg.MODEL.RESNETS.DEPTH, ref.MODEL.RESNETS.DEPTH),
        (cfg.MODEL.RESNETS.STRIDE_IN_1X1, ref.MODEL.RESNETS.STRIDE_IN_1X1),
        (cfg.MODEL.RESNETS.NORM, ref.MODEL.RESNETS.NORM),
        (cfg.MODEL.BACKBONE.FREEZE_AT, ref.MODEL.BACKBONE.FREEZE_AT),
        (cfg.MODEL.FPN.OUT_CHANNELS, ref.MODEL.FPN.OUT_CHANNELS),
        (cfg.INPUT.FORMAT, ref.INPUT.FORMAT),
        (cfg.INPUT.MIN_SIZE_TEST, ref.INPUT.MIN_SIZE_TEST),
        (cfg.INPUT.MAX_SIZE_TEST, ref.INPUT.MAX_SIZE_TEST),
        (cfg.INPUT.RESIZE_BACKEND, ref.INPUT.RESIZE_BACKEND),
    ]:
        assert a == b


# ------------------------------------------------------------------ key mapping
def _fake_mmdet_r50_backbone_neck():
    """Names (and shapes) of mmdet's ResNet-50 + FPN(256) state dict, built by hand."""
    sd = {"backbone.conv1.weight": torch.zeros(64, 3, 7, 7)}
    for n in ("weight", "bias", "running_mean", "running_var"):
        sd[f"backbone.bn1.{n}"] = torch.zeros(64)
    sd["backbone.bn1.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    in_ch = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), 1):
        for b in range(blocks):
            cin = in_ch if b == 0 else width * 4
            shapes = {1: (width, cin, 1, 1), 2: (width, width, 3, 3), 3: (width * 4, width, 1, 1)}
            for z, shape in shapes.items():
                sd[f"backbone.layer{stage}.{b}.conv{z}.weight"] = torch.randn(shape)
                for n in ("weight", "bias", "running_mean", "running_var"):
                    sd[f"backbone.layer{stage}.{b}.bn{z}.{n}"] = torch.randn(shape[0])
                sd[f"backbone.layer{stage}.{b}.bn{z}.num_batches_tracked"] = torch.tensor(1)
            if b == 0:
                sd[f"backbone.layer{stage}.0.downsample.0.weight"] = torch.randn(
                    width * 4, cin, 1, 1)
                for n in ("weight", "bias", "running_mean", "running_var"):
                    sd[f"backbone.layer{stage}.0.downsample.1.{n}"] = torch.randn(width * 4)
        in_ch = width * 4
    for i, c in enumerate((256, 512, 1024, 2048)):
        sd[f"neck.lateral_convs.{i}.conv.weight"] = torch.randn(256, c, 1, 1)
        sd[f"neck.lateral_convs.{i}.conv.bias"] = torch.randn(256)
        sd[f"neck.fpn_convs.{i}.conv.weight"] = torch.randn(256, 256, 3, 3)
        sd[f"neck.fpn_convs.{i}.conv.bias"] = torch.randn(256)
    return sd


def test_backbone_and_fpn_key_mapping():
    sd = _fake_mmdet_r50_backbone_neck()
    out = convert_state_dict(sd, "SOLOHead", [2, 3, 4, 5])
    assert not any("num_batches_tracked" in k for k in out)
    pairs = {
        "backbone.conv1.weight": "backbone.bottom_up.stem.conv1.weight",
        "backbone.bn1.running_var": "backbone.bottom_up.stem.conv1.norm.running_var",
        "backbone.layer1.0.conv3.weight": "backbone.bottom_up.res2.0.conv3.weight",
        "backbone.layer3.5.bn2.bias": "backbone.bottom_up.res4.5.conv2.norm.bias",
        "backbone.layer4.0.downsample.0.weight": "backbone.bottom_up.res5.0.shortcut.weight",
        "backbone.layer2.0.downsample.1.running_mean":
            "backbone.bottom_up.res3.0.shortcut.norm.running_mean",
        "neck.lateral_convs.0.conv.weight": "backbone.fpn_lateral2.weight",
        "neck.fpn_convs.3.conv.bias": "backbone.fpn_output5.bias",
    }
    for src, dst in pairs.items():
        assert torch.equal(out[dst], sd[src]), (src, dst)


def test_head_key_mapping_table():
    sd = {
        "mask_head.mask_convs.0.conv.weight": torch.randn(2),
        "mask_head.mask_convs.0.gn.weight": torch.randn(2),
        "mask_head.mask_convs.3.conv.conv_offset.weight": torch.randn(2),  # DCN in light head
        "mask_head.conv_mask_list_x.2.bias": torch.randn(2),
        "mask_head.conv_cls.weight": torch.randn(2),
    }
    out = convert_state_dict(sd, "DecoupledSOLOLightHead", [2, 3, 4, 5])
    assert set(out) == {
        "head.mask_convs.0.weight",
        "head.mask_convs.0.norm.weight",
        "head.mask_convs.3.conv_offset.weight",
        "head.conv_mask_list_x.2.bias",
        "head.conv_cls.weight",
    }
    with pytest.raises(MMDetConversionError, match="mask_head.kernel_convs"):
        convert_state_dict({"mask_head.kernel_convs.0.conv.weight": torch.zeros(1)},
                           "SOLOHead", [2, 3, 4, 5])
    with pytest.raises(MMDetConversionError, match="SOLOV3Head"):
        convert_state_dict({}, "SOLOV3Head", [2, 3, 4, 5])


def test_head_descriptions():
    """Each head is described once (MMDET_HEADS); the detector table and the key table are
    derived from it, and each head's mmdet reference config is a config of that head."""
    from solo_d2.convert.mmdet import MMDET_HEADS, SUPPORTED_MODEL_TYPES, mmdet_head
    from solo_d2.convert.mmdet.key_map import KEY_KINDS

    assert SUPPORTED_MODEL_TYPES == {
        "SOLO": ("SOLOHead", "DecoupledSOLOHead", "DecoupledSOLOLightHead"),
        "SOLOv2": ("SOLOV2Head",),
    }
    assert {n: h.reference_config for n, h in MMDET_HEADS.items()} == {
        "SOLOHead": "solo/solo_r50_fpn_1x_coco.py",
        "DecoupledSOLOHead": "solo/decoupled-solo_r50_fpn_1x_coco.py",
        "DecoupledSOLOLightHead": "solo/decoupled-solo-light_r50_fpn_3x_coco.py",
        "SOLOV2Head": "solov2/solov2_r50_fpn_1x_coco.py",
    }
    assert HEAD_KEY_TABLE["SOLOHead"] == [
        ("mask_convs", "mask_convs", "convmodule_list"),
        ("cls_convs", "cls_convs", "convmodule_list"),
        ("conv_mask_list", "conv_mask_list", "plain"),
        ("conv_cls", "conv_cls", "plain"),
    ]
    for name, head in MMDET_HEADS.items():
        assert head.name == name and mmdet_head(name) is head
        assert HEAD_KEY_TABLE[name] == [tuple(r) for r in head.key_rows]
        assert {r.kind for r in head.key_rows} <= set(KEY_KINDS)
    with pytest.raises(MMDetConversionError, match="'SOLOV3Head'.*known"):
        mmdet_head("SOLOV3Head")
    if _mmdet_solo_configs() is None:
        pytest.skip("mmdet's configs are not installed")
    for name, head in MMDET_HEADS.items():
        mm = load_mmdet_config_file(head.reference_config_path())
        assert (mm["model"]["type"], mm["model"]["mask_head"]["type"]) == (head.detector, name)
        cfg, _ = mmdet_config_to_d2(mm)
        assert cfg.MODEL.SOLO.HEAD_NAME == name


def test_solov2_head_and_deformable_backbone_key_mapping():
    """SOLOV2Head rows map mmcv ConvModule names (conv.X -> X, gn.X -> norm.X, a DCN's
    conv.conv_offset.X -> conv_offset.X) onto the names written out here; mmcv's DCN offset
    conv inside a ResNet block (conv2.conv_offset) becomes Detectron2's
    DeformBottleneckBlock.conv2_offset."""
    expected = {  # mmdet name under mask_head. -> solo_d2 name under head.
        "kernel_convs.0.conv.weight": "kernel_convs.0.weight",
        "kernel_convs.2.gn.bias": "kernel_convs.2.norm.bias",
        "kernel_convs.3.conv.conv_offset.weight": "kernel_convs.3.conv_offset.weight",
        "kernel_convs.3.conv.conv_offset.bias": "kernel_convs.3.conv_offset.bias",
        "cls_convs.1.gn.weight": "cls_convs.1.norm.weight",
        "cls_convs.3.conv.weight": "cls_convs.3.weight",
        "conv_kernel.weight": "conv_kernel.weight",
        "conv_kernel.bias": "conv_kernel.bias",
        "conv_cls.bias": "conv_cls.bias",
        "mask_feature_head.convs_all_levels.0.conv0.conv.weight":
            "mask_feature_head.convs_all_levels.0.conv0.weight",
        "mask_feature_head.convs_all_levels.3.conv2.gn.bias":
            "mask_feature_head.convs_all_levels.3.conv2.norm.bias",
        "mask_feature_head.convs_all_levels.2.conv1.conv.conv_offset.weight":
            "mask_feature_head.convs_all_levels.2.conv1.conv_offset.weight",
        "mask_feature_head.conv_pred.conv.weight": "mask_feature_head.conv_pred.weight",
        "mask_feature_head.conv_pred.gn.weight": "mask_feature_head.conv_pred.norm.weight",
        "mask_feature_head.conv_pred.conv.conv_offset.bias":
            "mask_feature_head.conv_pred.conv_offset.bias",
    }
    sd = {f"mask_head.{k}": torch.randn(2) for k in expected}
    sd["backbone.layer3.4.conv2.conv_offset.weight"] = torch.randn(27, 256, 3, 3)
    sd["backbone.layer3.4.conv2.conv_offset.bias"] = torch.randn(27)
    sd["backbone.layer3.4.conv2.weight"] = torch.randn(256, 256, 3, 3)
    out = convert_state_dict(sd, "SOLOV2Head", [2, 3, 4, 5])
    for k, ours in expected.items():
        assert torch.equal(out["head." + ours], sd[f"mask_head.{k}"]), k
    for leaf in ("weight", "bias"):
        assert torch.equal(out[f"backbone.bottom_up.res4.4.conv2_offset.{leaf}"],
                           sd[f"backbone.layer3.4.conv2.conv_offset.{leaf}"])
    assert torch.equal(out["backbone.bottom_up.res4.4.conv2.weight"],
                       sd["backbone.layer3.4.conv2.weight"])
    assert len(out) == len(sd)
    bad = "mask_head.mask_feature_head.convs_all_levels.0.weight"  # no conv{j} level
    with pytest.raises(MMDetConversionError, match=bad):
        convert_state_dict({bad: torch.zeros(1)}, "SOLOV2Head", [2, 3, 4, 5])


@pytest.mark.parametrize("mm_name", [
    "solo/decoupled-solo-light_r50_fpn_3x_coco.py",
    # ResNeXt-101 64x4d, DCNv2 in res3-res5, the head's towers and the mask-feature branch
    "solov2/solov2_x101-dcn_fpn_ms-3x_coco.py",
    # DCNv2 in the last conv of each tower only (dcn_apply_to_all_conv=False)
    "solov2/solov2-light_r50-dcn_fpn_ms-3x_coco.py",
])
def test_published_weights_fit_our_model(mm_name):
    """mmdet's full-size published models (built by mmdet, not run) convert onto our model,
    every tensor kept: same count, same values under the mapped names."""
    MODELS = require_mmdet().import_mmdet()
    family, name = mm_name.split("/")
    d = _mmdet_solo_configs(family)
    if d is None:
        pytest.skip("mmdet's configs are not installed")
    from mmengine.config import ConfigDict

    mm = load_mmdet_config_file(os.path.join(d, name))
    mm["model"]["backbone"]["init_cfg"] = None
    model = MODELS.build(ConfigDict(mm["model"]))
    cfg, stages = mmdet_config_to_d2(mm)
    sd = model.state_dict()
    out = convert_state_dict(sd, cfg.MODEL.SOLO.HEAD_NAME, stages)
    verify_loadable(cfg, out)
    assert len(out) == len([k for k in sd if not k.endswith("num_batches_tracked")])
    if "dcn" in name:
        r = cfg.MODEL.RESNETS
        assert r.DEFORM_ON_PER_STAGE == [False, True, True, True] and r.DEFORM_MODULATED
        off = sd["backbone.layer2.0.conv2.conv_offset.weight"]
        assert off.shape[0] == 27
        assert torch.equal(out["backbone.bottom_up.res3.0.conv2_offset.weight"], off)
    if "x101" in name:
        assert (cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP) == (64, 4)
        assert cfg.MODEL.SOLO.MASK_FEAT.DCN_TYPE == "DCNv2"


# ------------------------------------------------------------------ whole checkpoints, CLI
def _tiny_mmdet_cfg_text(model_type="SOLO", head_type="SOLOHead"):
    return (
        f"model = dict(type='{model_type}', data_preprocessor=dict(type='DetDataPreprocessor', "
        "mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0], bgr_to_rgb=False),"
        "backbone=dict(type='ResNet', depth=18, frozen_stages=-1, style='caffe'),"
        "neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=32, num_outs=5),"
        f"mask_head=dict(type='{head_type}', num_classes=3, in_channels=32, feat_channels=32, "
        "stacked_convs=1, num_grids=[4, 4, 4, 4, 4], norm_cfg=None),"
        "test_cfg=dict(score_thr=0.3, nms_pre=7, kernel='linear'))\n"
        "test_pipeline = [dict(type='Resize', scale=(300, 200), keep_ratio=True)]\n"
    )


def _our_state_for(cfg):
    cfg = cfg.clone()
    cfg.MODEL.DEVICE = "cpu"
    return {k: torch.randn(v.shape) if v.is_floating_point() else v
            for k, v in build_model(cfg).state_dict().items()}


def _to_mmdet_names(sd):
    """Inverse mapping for the tiny no-norm SOLOHead model (to fabricate mmdet checkpoints)."""
    out = {}
    for k, v in sd.items():
        k2 = k.replace("backbone.bottom_up.stem.conv1.norm.", "backbone.bn1.")
        k2 = k2.replace("backbone.bottom_up.stem.conv1.", "backbone.conv1.")
        for s in (2, 3, 4, 5):
            k2 = k2.replace(f"backbone.bottom_up.res{s}.", f"backbone.layer{s - 1}.")
            k2 = k2.replace(f"backbone.fpn_lateral{s}.", f"neck.lateral_convs.{s - 2}.conv.")
            k2 = k2.replace(f"backbone.fpn_output{s}.", f"neck.fpn_convs.{s - 2}.conv.")
        k2 = k2.replace(".shortcut.norm.", ".downsample.1.").replace(".shortcut.", ".downsample.0.")
        for z in (1, 2, 3):
            k2 = k2.replace(f".conv{z}.norm.", f".bn{z}.")
        for t in ("mask_convs", "cls_convs"):
            k2 = k2.replace(f"head.{t}.0.", f"mask_head.{t}.0.conv.")
        k2 = k2.replace("head.conv_", "mask_head.conv_")
        out[k2] = v
    return out


def test_tool_end_to_end_and_classes(tmp_path):
    text = _tiny_mmdet_cfg_text()
    cfg, _ = mmdet_config_to_d2(parse_mmdet_config(text))
    assert cfg.INPUT.FORMAT == "BGR" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is True
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0 and cfg.MODEL.SOLO.NORM == ""
    assert cfg.MODEL.SOLO.TEST.KERNEL == "linear" and cfg.MODEL.SOLO.TEST.NMS_PRE == 7
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (200, 300)
    ours = _our_state_for(cfg)
    src = tmp_path / "mm.pth"
    torch.save({"state_dict": _to_mmdet_names(ours),
                "meta": {"cfg": text, "dataset_meta": {"classes": ("a", "b", "c")}}}, src)
    dst, yaml = tmp_path / "out" / "d2.pth", tmp_path / "d2.yaml"
    tool = _tool("convert_mmdet_checkpoint")
    assert tool.main([str(src), str(dst), "--config-out", str(yaml)]) == 0
    assert load_thing_classes(str(tmp_path / "out" / "d2.classes.json")) == ["a", "b", "c"]
    assert load_thing_classes(str(dst)) == ["a", "b", "c"]
    rebuilt = get_cfg()
    solo_d2.add_solo_config(rebuilt)
    rebuilt.merge_from_file(str(yaml))
    rebuilt.MODEL.DEVICE = "cpu"
    assert rebuilt.MODEL.WEIGHTS == str(dst)
    model = build_model(rebuilt)
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt["__author__"] == "solo_d2 mmdet converter"
    assert ckpt["thing_classes"] == ["a", "b", "c"]
    incompatible = model.load_state_dict(ckpt["model"], strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    extra = DetectionCheckpointer(model).load(str(dst))
    assert extra["thing_classes"] == ["a", "b", "c"]
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ours.items())


def test_refusals(tmp_path, capsys):
    tool = _tool("convert_mmdet_checkpoint")
    maskrcnn = tmp_path / "maskrcnn.pth"
    torch.save({"state_dict": {}, "meta": {"cfg": _tiny_mmdet_cfg_text("MaskRCNN", "SOLOHead")}},
               maskrcnn)
    assert tool.main([str(maskrcnn), str(tmp_path / "x.pth")]) == 1
    err = capsys.readouterr().err
    assert "MaskRCNN" in err and "not a supported SOLO-family" in err
    mixed = {"state_dict": {}, "meta": {"cfg": _tiny_mmdet_cfg_text("SOLOv2", "SOLOHead")}}
    with pytest.raises(MMDetConversionError, match="SOLOv2 with SOLOV2Head"):
        convert_mmdet_checkpoint(mixed)
    with pytest.raises(MMDetConversionError, match="--mmdet-config"):
        convert_mmdet_checkpoint({"state_dict": {}, "meta": {}})
    with pytest.raises(MMDetConversionError, match="not valid python"):
        convert_mmdet_checkpoint({"state_dict": {}, "meta": {"config": "model = dict(("}})
    with pytest.raises(MMDetConversionError, match="no 'state_dict'"):
        convert_mmdet_checkpoint({"meta": {}})
    bad_keys = {"state_dict": {"roi_head.x.weight": torch.zeros(1)},
                "meta": {"cfg": _tiny_mmdet_cfg_text()}}
    with pytest.raises(MMDetConversionError, match="roi_head.x.weight"):
        convert_mmdet_checkpoint(bad_keys)
    assert not (tmp_path / "x.pth").exists()


def _solov2_cfg(backbone="", head="", mask_feat=""):
    return parse_mmdet_config(
        "model = dict(type='SOLOv2', data_preprocessor=dict(type='DetDataPreprocessor', "
        "mean=[1.0, 2.0, 3.0], std=[2.0, 2.0, 2.0], bgr_to_rgb=True),"
        f"backbone=dict(type='ResNet', depth=50{backbone}),"
        "neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=32, num_outs=5),"
        "mask_head=dict(type='SOLOV2Head', num_classes=3, in_channels=32, feat_channels=32, "
        f"stacked_convs=2, num_grids=[4, 4, 4, 4, 4]{head}, mask_feature_head=dict("
        "feat_channels=32, start_level=0, end_level=3, out_channels=64, mask_stride=4, "
        f"norm_cfg=dict(type='GN', num_groups=32){mask_feat})))\n"
        "test_pipeline = [dict(type='Resize', scale=(300, 200), keep_ratio=True)]\n")


def test_solov2_config_translation_and_refusals():
    cfg, _ = mmdet_config_to_d2(_solov2_cfg(
        ", type='ResNeXt', groups=8, base_width=8, dcn=dict(type='DCN', deform_groups=2), "
        "stage_with_dcn=(False, False, True, True)",
        ", dynamic_conv_size=3, dcn_cfg=dict(type='DCNv2'), dcn_apply_to_all_conv=False",
        ", conv_cfg=dict(type='DCN')"))
    r, s = cfg.MODEL.RESNETS, cfg.MODEL.SOLO
    assert (r.NUM_GROUPS, r.WIDTH_PER_GROUP) == (8, 8)
    assert r.DEFORM_ON_PER_STAGE == [False, False, True, True]
    assert r.DEFORM_MODULATED is False and r.DEFORM_NUM_GROUPS == 2
    assert s.HEAD_NAME == "SOLOV2Head" and s.DYNAMIC_CONV_SIZE == 3
    assert s.DCN_TYPE == "DCNv2" and s.DCN_APPLY_TO_ALL_CONV is False
    assert s.MASK_FEAT.DCN_TYPE == "DCN" and s.MASK_FEAT.OUT_CHANNELS == 64
    # ResNeXt with groups=1 is a plain ResNet in mmdet (width = planes)
    cfg, _ = mmdet_config_to_d2(_solov2_cfg(", type='ResNeXt', groups=1"))
    assert (cfg.MODEL.RESNETS.NUM_GROUPS, cfg.MODEL.RESNETS.WIDTH_PER_GROUP) == (1, 64)
    with pytest.raises(MMDetConversionError, match="mask_feature_head.norm_cfg"):
        mmdet_config_to_d2(_drop_mask_feat_norm(_solov2_cfg()))
    with pytest.raises(MMDetConversionError, match="ResNet-18"):
        mmdet_config_to_d2(_solov2_cfg(", depth=18, dcn=dict(type='DCNv2'), "
                                       "stage_with_dcn=(False, True, True, True)"))
    with pytest.raises(MMDetConversionError, match="fallback_on_stride"):
        mmdet_config_to_d2(_solov2_cfg(", dcn=dict(type='DCNv2', fallback_on_stride=True), "
                                       "stage_with_dcn=(False, True, True, True)"))
    with pytest.raises(MMDetConversionError, match="conv_cfg"):
        mmdet_config_to_d2(_solov2_cfg(mask_feat=", conv_cfg=dict(type='DCNv3')"))
    with pytest.raises(MMDetConversionError, match="end_level=5"):
        mm = _solov2_cfg()
        mm["model"]["mask_head"]["mask_feature_head"]["end_level"] = 5
        mmdet_config_to_d2(mm)


def _drop_mask_feat_norm(mm):
    del mm["model"]["mask_head"]["mask_feature_head"]["norm_cfg"]  # mmdet's default: no norm
    return mm


def test_mmdet_config_flag_overrides_missing_meta(tmp_path):
    text = _tiny_mmdet_cfg_text()
    (tmp_path / "cfg.py").write_text(text)
    cfg, _ = mmdet_config_to_d2(parse_mmdet_config(text))
    ours = _our_state_for(cfg)
    ckpt, cfg2, classes = convert_mmdet_checkpoint(
        {"state_dict": _to_mmdet_names(ours), "meta": {}}, mmdet_config=str(tmp_path / "cfg.py"))
    assert classes is None and "thing_classes" not in ckpt
    assert set(ckpt["model"]) == set(ours)
    verify_loadable(cfg2, ckpt["model"])


# ------------------------------------------------------------------ torchvision
@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_resnet_conversion(depth, tmp_path, cfg_factory):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(depth)
    tv = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    with torch.no_grad():  # non-trivial BN statistics
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 1.5)
    src = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), src)
    dst = tmp_path / "R-tv.pkl"
    assert _tool("convert_torchvision_backbone").main([str(src), str(dst)]) == 0
    with open(dst, "rb") as f:
        data = pickle.load(f)
    assert data["__author__"] == "torchvision" and data["matching_heuristics"] is True
    assert all(isinstance(v, np.ndarray) for v in data["model"].values())
    assert "stem.conv1.norm.running_var" in data["model"] and not any(
        k.startswith("fc") or "num_batches" in k for k in data["model"])

    cfg = cfg_factory()
    if depth == 50:
        cfg.MODEL.RESNETS.DEPTH = 50
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 256
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(dst))
    ours = model.state_dict()
    tv_sd = tv.state_dict()
    checked = 0
    for k, v in tv_sd.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        name = "backbone.bottom_up." + (
            k.replace("conv1.", "stem.conv1.", 1).replace("bn1.", "stem.conv1.norm.", 1)
            if not k.startswith("layer") else k
        )
        if k.startswith("layer"):
            stage, rest = k.split(".", 1)
            rest = rest.replace("downsample.0.", "shortcut.")
            rest = rest.replace("downsample.1.", "shortcut.norm.")
            for z in (1, 2, 3):
                rest = rest.replace(f"bn{z}.", f"conv{z}.norm.")
            name = f"backbone.bottom_up.res{int(stage[-1]) + 1}.{rest}"
        assert torch.equal(ours[name], v), name
        checked += 1
    assert checked == len(data["model"])


def test_torchvision_refuses_other_state_dicts():
    with pytest.raises(ValueError, match="not torchvision ResNet keys"):
        convert_torchvision_resnet({"features.0.weight": torch.zeros(1)})
    assert save_d2_pickle  # exported
