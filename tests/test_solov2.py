"""SOLOv2 head (solo_d2/modeling/solov2_head.py): shapes, lazy masks, training, configs, and
parity with mmdet 3.3.0's SOLOV2Head (forward, predict_by_feat, loss_by_feat)."""
import glob
import math
import os
import sys

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances

import solo_d2
from conftest import tiny_cfg
from solo_d2.modeling.solov2_head import SOLOV2Head, solov2_head_key_map

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
            assert head.kernel_preds(mask_inputs, lvl).shape == (2, MASK_OUT_CH, s, s)
            assert head.level_mask_size(mask_inputs, lvl) == (32, 40)  # 1/4 on every level
            full = head.full_mask_logits(mask_inputs, lvl).sigmoid()
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
    from solo_d2.modeling.layers import DeformConv

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


def test_key_map_table():
    m = solov2_head_key_map
    assert m("cls_convs.0.conv.weight") == "cls_convs.0.weight"
    assert m("kernel_convs.1.gn.bias") == "kernel_convs.1.norm.bias"
    assert m("conv_cls.bias") == "conv_cls.bias"
    assert m("conv_kernel.weight") == "conv_kernel.weight"
    assert m("kernel_convs.1.conv.conv_offset.weight") == "kernel_convs.1.conv_offset.weight"
    assert (m("mask_head.mask_feature_head.convs_all_levels.3.conv2.conv.weight")
            == "mask_head.mask_feature_head.convs_all_levels.3.conv2.weight")
    assert m("mask_feature_head.conv_pred.gn.weight") == "mask_feature_head.conv_pred.norm.weight"


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


# ------------------------------------------------------------------ mmdet reference


def _mmdet():
    for p in ("/work/shared/reference", os.path.join(ROOT, "..", "shared", "reference")):
        if os.path.isdir(p) and p not in sys.path:
            sys.path.insert(0, p)
    try:
        import mmstub  # noqa: F401
    except ImportError:
        pass
    pytest.importorskip("mmdet")
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel("WARNING")  # init_weights logs every parameter
    return MODELS


TEST_CFG = dict(nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05, kernel="gaussian",
                sigma=2.0, max_per_img=100)


def _mmdet_head(dcn=None):
    from mmengine.config import ConfigDict

    MODELS = _mmdet()
    cfg = dict(
        type="SOLOV2Head", num_classes=NUM_CLASSES, in_channels=FPN_CH, feat_channels=HEAD_CH,
        stacked_convs=2, strides=[8, 8, 16, 32, 32], scale_ranges=[tuple(r) for r in RANGES],
        pos_scale=0.2, num_grids=GRIDS, cls_down_index=0,
        mask_feature_head=dict(feat_channels=MASK_FEAT_CH, start_level=0, end_level=3,
                               out_channels=MASK_OUT_CH, mask_stride=4,
                               norm_cfg=dict(type="GN", num_groups=32, requires_grad=True)),
        loss_mask=dict(type="DiceLoss", use_sigmoid=True, loss_weight=3.0),
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        norm_cfg=dict(type="GN", num_groups=32, requires_grad=True),
        test_cfg=ConfigDict(TEST_CFG),
    )
    if dcn:
        cfg.update(dcn_cfg=dict(type=dcn), dcn_apply_to_all_conv=True)
        cfg["mask_feature_head"]["conv_cfg"] = dict(type=dcn)
    torch.manual_seed(0)
    head = MODELS.build(ConfigDict(cfg))
    head.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial norms, kernels and scores
        for m in head.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
        head.conv_kernel.weight.mul_(30)
        head.conv_cls.weight.mul_(30)
    return head


def _ours_from(mm_head):
    model = build_model(_cfg(DROP_VANISHED_TARGETS=False)).eval()
    sd = {solov2_head_key_map(k): v for k, v in mm_head.state_dict().items()}
    model.head.load_state_dict(sd, strict=True)
    return model


def test_mmdet_dcn_state_dict_maps():
    mm = _mmdet_head(dcn="DCNv2")
    cfg = _cfg(DCN_TYPE="DCNv2")
    cfg.MODEL.SOLO.MASK_FEAT.DCN_TYPE = "DCNv2"
    ours = SOLOV2Head(cfg, [ShapeSpec(channels=FPN_CH)] * 5)
    sd = {solov2_head_key_map(k): v for k, v in mm.state_dict().items()}
    ours.load_state_dict(sd, strict=True)


def test_parity_with_mmdet_forward_predict_and_loss():
    _mmdet()
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    mm = _mmdet_head()
    model = _ours_from(mm)
    head = model.head
    feats = _fpn_feats(2, (128, 128), seed=3)
    mm.eval()
    with torch.no_grad():
        mm_kernels, mm_cls, mm_mask_feats = mm(feats)
        cls_logits, mask_inputs = head(feats)
        # shift the category bias so that a realistic number of cells pass score_thr
        flat = torch.cat([x[0].flatten() for x in cls_logits])
        shift = math.log(0.1 / 0.9) - flat.topk(60).values[-1].item()
        for m in (mm, head):
            m.conv_cls.bias.add_(shift)
        mm_kernels, mm_cls, mm_mask_feats = mm(feats)
        cls_logits, mask_inputs = head(feats)

    diffs = {}
    diffs["cls"] = max((a - b).abs().max().item() for a, b in zip(cls_logits, mm_cls))
    diffs["kernel"] = max((head.kernel_preds(mask_inputs, lvl) - k).abs().max().item()
                          for lvl, k in enumerate(mm_kernels))
    diffs["mask_feats"] = (mask_inputs[0][1] - mm_mask_feats).abs().max().item()
    # candidate masks: our lazy masks of the cells that pass score_thr vs mmdet's dynamic conv
    lazy_diff = 0.0
    for lvl, k in enumerate(mm_kernels):
        probs = mm_cls[lvl].sigmoid()
        b, _, i, j = (probs > 0.1).nonzero(as_tuple=True)
        if len(b) == 0:
            continue
        cells = i * GRIDS[lvl] + j
        ref = torch.stack([
            torch.nn.functional.conv2d(mm_mask_feats[bb:bb + 1],
                                       k[bb, :, ii, jj].view(1, MASK_OUT_CH, 1, 1))[0, 0]
            for bb, ii, jj in zip(b, i, j)
        ]).sigmoid()
        with torch.no_grad():
            lazy = head.mask_probs(mask_inputs, lvl, b, cells)
        lazy_diff = max(lazy_diff, (lazy - ref).abs().max().item())
    diffs["candidate_masks"] = lazy_diff
    print("max abs diffs", diffs)
    assert max(diffs.values()) < 1e-4, diffs

    # predict_by_feat vs our inference: image 120x112 inside the 128x128 batch, original 90x84
    metas = [dict(img_shape=(120, 112), ori_shape=(90, 84)),
             dict(img_shape=(128, 128), ori_shape=(160, 160))]
    with torch.no_grad():
        ref = mm.predict_by_feat(list(mm_kernels), list(mm_cls), mm_mask_feats, metas)
        ours = model.inference(cls_logits, mask_inputs, [m["img_shape"] for m in metas],
                               [m["ori_shape"] for m in metas])
    for r, o in zip(ref, ours):
        assert len(r) == len(o) > 5
        assert torch.equal(r.labels, o.pred_classes)
        torch.testing.assert_close(o.scores, r.scores, atol=1e-4, rtol=0)
        agree = (r.masks == o.pred_masks).float().mean().item()
        print("instances", len(r), "mask agreement", agree)
        assert agree >= 0.999

    # loss_by_feat vs our losses; overlapping centre regions and a tiny instance included
    rects = [[(10, 60, 20, 90), (20, 70, 30, 100), (70, 120, 30, 70), (40, 44, 100, 104)],
             [(0, 128, 0, 128), (30, 50, 40, 60), (32, 52, 42, 62)]]
    classes = [[0, 1, 2, 1], [2, 0, 1]]
    gts, mm_gts = [], []
    for rs, cs in zip(rects, classes):
        inst = _rect_instances((128, 128), rs, cs)
        gts.append(inst)
        g = InstanceData()
        g.bboxes = inst.gt_boxes.tensor.clone()
        g.labels = inst.gt_classes.clone()
        g.masks = BitmapMasks(inst.gt_masks.tensor.numpy().astype(np.uint8), 128, 128)
        mm_gts.append(g)
    mm.train()
    head.train()
    mm_kernels, mm_cls, mm_mask_feats = mm(feats)
    cls_logits, mask_inputs = head(feats)
    ref = mm.loss_by_feat(mm_kernels, mm_cls, mm_mask_feats, mm_gts,
                          [dict(img_shape=(128, 128))] * 2)
    ours = model.losses(cls_logits, mask_inputs, gts, (128, 128))
    print("losses", {k: (ours[k].item(), ref[k].item()) for k in ref})
    for k in ("loss_mask", "loss_cls"):
        torch.testing.assert_close(ours[k], ref[k], rtol=1e-4, atol=1e-6)
