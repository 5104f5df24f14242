"""SOLOv2 head (solo_d2/heads/solov2.py): shapes, lazy masks, deformable variants,
training and configs. Parity with mmdet 3.3.0's SOLOV2Head, through the converter, is in
tests/test_parity_mmdet.py."""
import glob
import math
import os

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances

import solo_d2
from conftest import ROOT, tiny_cfg
from solo_d2.heads import SOLOV2Head
from solo_d2.testing import full_mask_logits, solov2_kernel_preds

NUM_CLASSES = 3
GRIDS = [12, 10, 8, 6, 4]
RANGES = [[1, 32], [16, 64], [32, 128], [64, 256], [128, 512]]
FPN_CH, HEAD_CH, MASK_FEAT_CH, MASK_OUT_CH = 64, 64, 32, 64


def _cfg(**solo):
    """R18-FPN(64) SOLOv2 with 2 stacked convs, small grids, 3 classes: fast on a CPU."""
    cfg = tiny_cfg("SOLOV2Head", NUM_CLASSES, "SOLOv2_R50_1x.yaml", FPN_CH, HEAD_CH)
    cfg.MODEL.SOLO.MASK_FEAT.FEAT_CHANNELS = MASK_FEAT_CH
    cfg.MODEL.SOLO.MASK_FEAT.OUT_CHANNELS = MASK_OUT_CH
    for k, v in solo.items():
        setattr(cfg.MODEL.SOLO, k, v)
    return cfg


def _fpn_feats(n=2, size=(128, 160), seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return [torch.randn(n, FPN_CH, math.ceil(h / s), math.ceil(w / s), generator=g)
            for s in (4, 8, 16, 32, 64)]


def _head(**solo):
    cfg = _cfg(**solo)
    return SOLOV2Head(cfg, [ShapeSpec(channels=FPN_CH)] * 5)


def _rect_instances(hw, rects, classes):
    h, w = hw
    masks = torch.zeros(len(rects), h, w, dtype=torch.bool)
    for m, (y0, y1, x0, x1) in zip(masks, rects):
        m[y0:y1, x0:x1] = True
    inst = Instances(hw)
    inst.gt_masks = BitMasks(masks)
    inst.gt_boxes = Boxes(torch.tensor([[x0, y0, x1, y1] for y0, y1, x0, x1 in rects],
                                       dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


# ------------------------------------------------------------------------------ head


def test_output_shapes_and_lazy_masks_equal_full_dynamic_conv():
    torch.manual_seed(0)
    head = _head().eval()
    feats = _fpn_feats()
    with torch.no_grad():
        cls_logits, mask_inputs = head(feats)
        for lvl, s in enumerate(GRIDS):
            assert cls_logits[lvl].shape == (2, NUM_CLASSES, s, s)
            assert solov2_kernel_preds(head, mask_inputs, lvl).shape == (2, MASK_OUT_CH, s, s)
            assert head.level_mask_size(mask_inputs, lvl) == (32, 40)  # 1/4 on every level
            full = full_mask_logits(head, mask_inputs, lvl).sigmoid()
            assert full.shape == (2, s * s, 32, 40)
            # a few cells of both images, in scrambled order
            cells = torch.tensor([s * s - 1, 0, s + 1, 3])
            batch = torch.tensor([1, 0, 1, 0])
            lazy = head.mask_probs(mask_inputs, lvl, batch, cells)
            torch.testing.assert_close(lazy, full[batch, cells], atol=1e-6, rtol=1e-5)
            resized = head.mask_probs(mask_inputs, lvl, batch, cells, (64, 80))
            assert resized.shape == (4, 64, 80)
        assert mask_inputs[0][1].shape == (2, MASK_OUT_CH, 32, 40)


def test_dcn_head_runs_on_cpu_and_light_dcn_only_in_last_conv():
    from solo_d2.layers.blocks import DeformConv

    head = _head(DCN_TYPE="DCNv2", DCN_APPLY_TO_ALL_CONV=False).eval()
    assert [isinstance(m, DeformConv) for m in head.kernel_convs] == [False, True]
    assert [isinstance(m, DeformConv) for m in head.cls_convs] == [False, True]
    head = _head(DCN_TYPE="DCN")
    assert all(isinstance(m, DeformConv) for m in head.kernel_convs)
    cfg = _cfg(DCN_TYPE="DCNv2")
    cfg.MODEL.SOLO.MASK_FEAT.DCN_TYPE = "DCNv2"
    head = SOLOV2Head(cfg, [ShapeSpec(channels=FPN_CH)] * 5).eval()
    assert isinstance(head.mask_feature_head.conv_pred, DeformConv)  # 1x1 deformable
    with torch.no_grad():
        cls_logits, mask_inputs = head(_fpn_feats(1, (64, 64)))
        probs = head.mask_probs(mask_inputs, 2, torch.tensor([0]), torch.tensor([5]))
    assert probs.shape == (1, 16, 16) and torch.isfinite(probs).all()


# -------------------------------------------------------------------------- training


def test_training_step_finite_and_backward_with_empty_image():
    torch.manual_seed(0)
    model = build_model(_cfg())
    model.train()
    img = torch.rand(3, 128, 160) * 255
    inst = _rect_instances((128, 160), [(10, 60, 20, 90), (70, 120, 30, 70), (30, 50, 40, 60)],
                           [0, 2, 1])
    empty = _rect_instances((128, 160), [], [])
    losses = model([{"image": img, "instances": inst}, {"image": img, "instances": empty}])
    assert set(losses) == {"loss_mask", "loss_cls"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    sum(losses.values()).backward()
    head_params = dict(model.head.named_parameters())
    assert all(p.grad is not None for p in head_params.values())
    assert head_params["conv_kernel.weight"].grad.abs().sum() > 0
    assert head_params["mask_feature_head.conv_pred.weight"].grad.abs().sum() > 0

    model.zero_grad()
    losses = model([{"image": img, "instances": empty}])
    assert losses["loss_mask"] == 0 and torch.isfinite(losses["loss_cls"])
    sum(losses.values()).backward()  # every head parameter still in the graph (DDP)
    assert all(p.grad is not None for p in model.head.parameters())


def test_inference_outputs_instances():
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    with torch.no_grad():
        torch.nn.init.constant_(model.head.conv_cls.bias, -1.0)
        out = model([{"image": torch.rand(3, 128, 160) * 255, "height": 64, "width": 80}])
    r = out[0]["instances"]
    assert r.image_size == (64, 80) and r.pred_masks.shape[1:] == (64, 80)
    assert 0 < len(r) <= 100 and (r.scores[:-1] >= r.scores[1:]).all()


# --------------------------------------------------------------------------- configs


def test_all_solov2_yamls_load_and_r50_builds():
    files = sorted(glob.glob(os.path.join(ROOT, "configs", "SOLOv2_*.yaml")))
    names = {os.path.basename(f) for f in files}
    assert {f"SOLOv2_{n}.yaml" for n in ("R50_1x", "R50_3x", "R101_3x", "R101_DCN_3x",
            "X101_DCN_3x", "Light_R18_3x", "Light_R34_3x", "Light_R50_3x")} <= names
    cfgs = {}
    for f in files:
        cfg = get_cfg()
        solo_d2.add_solo_config(cfg)
        cfg.merge_from_file(f)
        assert cfg.MODEL.SOLO.HEAD_NAME == "SOLOV2Head"
        assert cfg.SOLVER.CLIP_GRADIENTS.ENABLED and cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE == 35
        cfgs[os.path.basename(f)[7:-5]] = cfg
    assert cfgs["Light_R18_3x"].MODEL.SOLO.STACKED_CONVS == 2
    assert cfgs["Light_R18_3x"].MODEL.SOLO.MASK_FEAT.OUT_CHANNELS == 128
    assert cfgs["X101_DCN_3x"].MODEL.RESNETS.NUM_GROUPS == 64
    assert cfgs["R101_DCN_3x"].MODEL.SOLO.MASK_FEAT.DCN_TYPE == "DCNv2"
    cfg = cfgs["R50_1x"]
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.DATASETS.TRAIN = cfg.DATASETS.TEST = ()
    model = build_model(cfg)
    h = model.head
    assert isinstance(h, SOLOV2Head)
    assert h.conv_kernel.weight.shape == (256, 512, 3, 3)
    assert h.mask_feature_head.conv_pred.weight.shape == (256, 128, 1, 1)
    assert h.mask_feature_head.convs_all_levels[3].conv0.weight.shape == (128, 258, 3, 3)


def test_dynamic_conv_as_matmuls_equals_conv2d():
    # the matmul form (traceable into ONNX) against torch's unpadded convolution
    g = torch.Generator().manual_seed(0)
    for k in (1, 3):
        head = build_model(_cfg(DYNAMIC_CONV_SIZE=k)).head
        feats = torch.randn(MASK_OUT_CH, 13, 17, generator=g)
        kernels = torch.randn(5, MASK_OUT_CH * k * k, generator=g)
        expected = torch.nn.functional.conv2d(feats[None], kernels.view(5, -1, k, k))[0]
        got = head._dynamic_conv(feats, kernels)
        assert got.shape == (5, 13 - k + 1, 17 - k + 1)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
