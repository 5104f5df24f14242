"""Output and loss parity with mmdet 3.3.0 through the checkpoint converter.

For each head a small randomly initialised mmdet SOLO (ResNet-18, FPN 64, 2 stacked convs)
is saved as mmdet saves it, converted by solo_d2's converter, loaded into solo_d2's model
from the written yaml, and both models see the same normalised pixels. SOLOv2 (mmdet model
type "SOLOv2") runs as a scaled-down solov2_r50_fpn and a scaled-down solov2-light
(solo_d2.testing.mmdet_reference.SOLOV2_VARIANTS). Every test skips (fails under
SOLO_D2_REQUIRE_MMDET=1) when mmdet is not importable: conftest.require_mmdet.
"""
import os

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances

import solo_d2
from conftest import require_mmdet
from solo_d2.checkpoint import convert_mmdet_checkpoint, write_outputs
from solo_d2.convert.mmdet import MMDET_HEADS
from solo_d2.testing import full_mask_logits, solov2_kernel_preds
from solo_d2.testing import mmdet_reference as R  # importable without mmdet; Pair requires it

# every described head, then the small SOLOv2 variants that are not heads of their own
# ("SOLOV2Head-light"); a test model's seed is its position here
HEADS = list(MMDET_HEADS) + [v for v in R.SOLOV2_VARIANTS if v not in MMDET_HEADS]
# Bias shifts that make a random model produce tens to hundreds of candidates and masks
# around the 0.5 threshold (decoupled masks are a product of two sigmoids; SOLOv2's entry is
# a gain on the dynamic-kernel conv's weights, see R.shift_head_biases).
CLS_SHIFT = {"SOLOV2Head": 0.0, "SOLOV2Head-light": 1.0}  # 3.5 for the others
CLS_GAIN = {"SOLOV2Head": 10.0, "SOLOV2Head-light": 10.0}  # 1 for the others
MASK_SHIFT = {"SOLOHead": 4.6, "DecoupledSOLOHead": 5.6, "DecoupledSOLOLightHead": 5.6,
              "SOLOV2Head": 30.0, "SOLOV2Head-light": 30.0}
CLASSES = ["cat", "dog", "car", "tree"]
TOL = 1e-4


def _normalise(img: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(R.MEAN).view(3, 1, 1)
    std = torch.tensor(R.STD).view(3, 1, 1)
    return (img - mean) / std


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    """Smooth random RGB image in [0, 255] (blocks + noise), float (3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, h // 16 + 1, w // 16 + 1), generator=g) * 255
    img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")[0]
    return (img + 20 * torch.rand((3, h, w), generator=g)).clamp(0, 255).round()


class Pair:
    """An mmdet model, its converted solo_d2 twin and the conversion outputs."""

    def __init__(self, head: str, tmp: str, mmdet2: bool = False):
        require_mmdet()
        cfg = R.small_solo_config(head, mmdet2=mmdet2)
        self.name = head
        self.mm_head_cfg = cfg["model"]["mask_head"]
        self.v2 = self.mm_head_cfg["type"] == "SOLOV2Head"
        self.mm = R.build_mmdet_model(cfg, seed=HEADS.index(head) if head in HEADS else 0)
        R.shift_head_biases(self.mm, CLS_SHIFT.get(head, 3.5), MASK_SHIFT[head],
                            CLS_GAIN.get(head, 1.0))
        src = os.path.join(tmp, "mmdet.pth")
        R.save_mmdet_checkpoint(self.mm, cfg, src, mmdet2=mmdet2, classes=CLASSES)
        dst = os.path.join(tmp, "solo_d2.pth")
        self.yaml = os.path.join(tmp, "solo_d2.yaml")
        self.ckpt, _, self.classes = convert_mmdet_checkpoint(src, weights_path=dst)
        self.written = write_outputs(self.ckpt, _, dst, self.yaml)
        d2cfg = get_cfg()
        solo_d2.add_solo_config(d2cfg)
        d2cfg.merge_from_file(self.yaml)
        d2cfg.MODEL.DEVICE = "cpu"
        d2cfg.MODEL.SOLO.DROP_VANISHED_TARGETS = False  # mmdet's semantics, for loss parity
        self.cfg = d2cfg
        self.model = build_model(d2cfg)
        self.extra = DetectionCheckpointer(self.model).load(d2cfg.MODEL.WEIGHTS)
        self.model.eval()


def _mm_cls(pair, mm_out):
    """mmdet's category outputs: last of SOLO heads' (masks..., cls), middle of SOLOv2's
    (kernels, cls, mask_feats)."""
    return mm_out[1] if pair.v2 else mm_out[-1]


def _mm_v2_mask_logits(mm_out, lvl: int, b: int, cells=None) -> torch.Tensor:
    """mmdet SOLOv2 mask logits of image b, level lvl: its kernels (of the given cells, or all)
    as 1x1 convs on its mask features (mmdet's own dynamic conv, done here independently)."""
    kernels, _, mask_feats = mm_out
    k = kernels[lvl][b].flatten(1).t()  # (S*S, E)
    if cells is not None:
        k = k[cells]
    return torch.nn.functional.conv2d(mask_feats[b : b + 1], k[:, :, None, None])[0]


@pytest.fixture(scope="module", params=HEADS)
def pair(request, tmp_path_factory):
    return Pair(request.param, str(tmp_path_factory.mktemp(request.param)))


def test_converted_checkpoint_fits_exactly(pair):
    ours = set(pair.model.state_dict())
    converted = set(pair.ckpt["model"])
    assert ours == converted, (sorted(ours - converted)[:5], sorted(converted - ours)[:5])
    assert pair.ckpt["matching_heuristics"] is False
    assert pair.extra["thing_classes"] == CLASSES
    sd = pair.model.state_dict()
    for k, v in pair.ckpt["model"].items():
        assert torch.equal(sd[k], v), k
    # the yaml rebuilds the mmdet settings
    c = pair.cfg
    assert c.MODEL.SOLO.NUM_CLASSES == R.NUM_CLASSES
    assert c.MODEL.SOLO.NUM_GRIDS == R.NUM_GRIDS
    mh = pair.mm_head_cfg
    assert c.MODEL.SOLO.STACKED_CONVS == mh["stacked_convs"]
    assert c.MODEL.SOLO.FEAT_CHANNELS == mh["feat_channels"]
    assert c.MODEL.SOLO.HEAD_NAME == mh["type"]
    assert [tuple(r) for r in c.MODEL.SOLO.SCALE_RANGES] == [tuple(r) for r in mh["scale_ranges"]]
    if pair.v2:
        mf = mh["mask_feature_head"]
        m = c.MODEL.SOLO.MASK_FEAT
        assert (m.FEAT_CHANNELS, m.START_LEVEL, m.END_LEVEL, m.OUT_CHANNELS, m.MASK_STRIDE) == (
            mf["feat_channels"], mf["start_level"], mf["end_level"], mf["out_channels"],
            mf["mask_stride"])
        assert m.DCN_TYPE == "" and c.MODEL.SOLO.DCN_TYPE == ""
        assert c.MODEL.SOLO.DYNAMIC_CONV_SIZE == 1 and c.MODEL.SOLO.DCN_APPLY_TO_ALL_CONV
    assert c.MODEL.FPN.OUT_CHANNELS == 64 and c.MODEL.RESNETS.DEPTH == 18
    assert c.INPUT.FORMAT == "RGB" and list(c.MODEL.PIXEL_MEAN) == R.MEAN
    assert (c.INPUT.MIN_SIZE_TEST, c.INPUT.MAX_SIZE_TEST) == (160, 256)
    assert c.INPUT.RESIZE_BACKEND == "cv2"
    assert c.MODEL.RESNETS.STRIDE_IN_1X1 is False and c.MODEL.BACKBONE.FREEZE_AT == 2


def _our_head_outputs(pair, img: torch.Tensor):
    _, cls_logits, mask_inputs = pair.model.forward_head([{"image": img}])
    return cls_logits, mask_inputs


@torch.no_grad()
def test_logits_match(pair):
    img = _image(128, 160, seed=1)
    x = _normalise(img)[None]
    mm_out = R.mmdet_head_forward(pair.mm, x, train=True)  # raw logits
    cls_logits, mask_inputs = _our_head_outputs(pair, img)
    head = pair.model.head
    diffs = {"cls": 0.0, "mask": 0.0}
    if pair.v2:
        diffs.update(kernel=0.0, mask_feats=(mask_inputs[0][1] - mm_out[2]).abs().max().item())
    for lvl in range(len(cls_logits)):
        diffs["cls"] = max(diffs["cls"],
                           (cls_logits[lvl] - _mm_cls(pair, mm_out)[lvl]).abs().max().item())
        ours = full_mask_logits(head, mask_inputs, lvl)
        if pair.v2:
            diffs["kernel"] = max(diffs["kernel"], (solov2_kernel_preds(head, mask_inputs, lvl)
                                                    - mm_out[0][lvl]).abs().max().item())
            ours, ref = (ours[0],), (_mm_v2_mask_logits(mm_out, lvl, 0),)
        elif isinstance(ours, tuple):  # decoupled: X and Y maps
            ref = (mm_out[0][lvl], mm_out[1][lvl])
        else:
            ours, ref = (ours,), (mm_out[0][lvl],)
        for a, b in zip(ours, ref):
            assert a.shape == b.shape
            diffs["mask"] = max(diffs["mask"], (a - b).abs().max().item())
    print(f"\n{pair.name} max |diff| logits: {diffs}")
    assert max(diffs.values()) < TOL


@torch.no_grad()
def test_candidate_mask_probs_match(pair):
    img = _image(128, 160, seed=2)
    x = _normalise(img)[None]
    mm_out = R.mmdet_head_forward(pair.mm, x, train=False)  # sigmoid, upsampled, point-NMS'd
    cls_logits, mask_inputs = _our_head_outputs(pair, img)
    head = pair.model.head
    out_size = head.level_mask_size(mask_inputs, 0)
    thr = pair.cfg.MODEL.SOLO.TEST.SCORE_THRESH
    num_cand, max_diff = 0, 0.0
    for lvl, s in enumerate(head.num_grids):
        scores = _mm_cls(pair, mm_out)[lvl][0]  # (C, S, S)
        if pair.v2:  # SOLOv2's forward returns logits in eval mode too
            scores = scores.sigmoid()
        cells = (scores > thr).any(0).flatten().nonzero().flatten()
        if len(cells) == 0:
            continue
        num_cand += len(cells)
        ours = head.mask_probs(mask_inputs, lvl, torch.zeros_like(cells), cells, out_size)
        if pair.v2:
            ref = _mm_v2_mask_logits(mm_out, lvl, 0, cells).sigmoid()
        elif len(mm_out) == 2:
            ref = mm_out[0][lvl][0, cells]
        else:
            ref = mm_out[0][lvl][0, cells % s] * mm_out[1][lvl][0, cells // s]
        max_diff = max(max_diff, (ours - ref).abs().max().item())
    print(f"\n{pair.name}: {num_cand} candidate cells, max |diff| probs {max_diff:.2e}")
    assert 10 <= num_cand
    assert max_diff < TOL


@pytest.mark.parametrize("out_hw", [(240, 300), (173, 91)])
@torch.no_grad()
def test_predictions_match(pair, out_hw):
    """Same instances (count, labels, order), scores and masks, incl. padding + rescale."""
    h, w = 120, 150
    H, W = out_hw
    img = _image(h, w, seed=3)
    x = torch.zeros((1, 3, 128, 160))
    x[0, :, :h, :w] = _normalise(img)
    mm_out = R.mmdet_head_forward(pair.mm, x, train=False)
    meta = dict(img_shape=(h, w), ori_shape=(H, W), batch_input_shape=(128, 160),
                pad_shape=(128, 160), scale_factor=(W / w, H / h))
    ref = pair.mm.mask_head.predict_by_feat(*mm_out, batch_img_metas=[meta])[0]
    ours = pair.model([{"image": img, "height": H, "width": W}])[0]["instances"]
    n = len(ref.scores)
    print(f"\n{pair.name}: {n} instances (mmdet) vs {len(ours)} (solo_d2)")
    assert 5 <= n
    assert len(ours) == n
    assert torch.equal(ours.pred_classes.cpu(), ref.labels.cpu())
    score_diff = (ours.scores - ref.scores).abs().max().item()
    agree = (ours.pred_masks.bool() == ref.masks.bool()).float().mean().item()
    print(f"   max |score diff| {score_diff:.2e}, mask pixel agreement {agree:.6f}")
    assert score_diff < TOL
    assert agree >= 0.999
    assert tuple(ours.pred_masks.shape[-2:]) == (H, W)


def _gt(h: int, w: int):
    """Three instances of different sizes (several levels), as boxes, labels and masks."""
    masks = np.zeros((3, h, w), np.uint8)
    masks[0, 10:40, 12:30] = 1  # small
    yy, xx = np.mgrid[:h, :w]
    masks[1] = ((yy - 70) ** 2 / 40**2 + (xx - 90) ** 2 / 55**2) <= 1  # large ellipse
    masks[2, 60:110, 5:60] = 1  # medium, overlaps the ellipse
    masks[2][masks[1] > 0] = 0
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return torch.tensor(boxes, dtype=torch.float32), torch.tensor([1, 3, 0]), masks


def _gt_crowded(h: int, w: int):
    """Instances whose centre regions overlap on the same grid cells (SOLOv2 keeps a target
    per instance there, SOLO the last one's), one 4x4 px instance, one as large as the image."""
    rects = [(10, 60, 20, 90), (20, 70, 30, 100), (70, 120, 30, 70), (40, 44, 100, 104),
             (0, 128, 0, 128), (30, 50, 40, 60), (32, 52, 42, 62)]
    masks = np.zeros((len(rects), h, w), np.uint8)
    for m, (y0, y1, x0, x1) in zip(masks, rects):
        m[y0:y1, x0:x1] = 1
    boxes = [[x0, y0, x1, y1] for y0, y1, x0, x1 in rects]
    labels = torch.tensor([0, 1, 2, 1, 2, 0, 1])
    return torch.tensor(boxes, dtype=torch.float32), labels, masks


@pytest.mark.parametrize("make_gt", [_gt, _gt_crowded], ids=["shapes", "crowded"])
def test_losses_match(pair, make_gt):
    h, w = 128, 160
    imgs = [_image(h, w, seed=4), _image(h, w, seed=5)]
    boxes, labels, masks = make_gt(h, w)
    empty = (torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long),
             np.zeros((0, h, w), np.uint8))
    gts = [(boxes, labels, masks), empty]
    x = torch.stack([_normalise(i) for i in imgs])

    mm_out = R.mmdet_head_forward(pair.mm, x, train=True)
    metas = [dict(img_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                  ori_shape=(h, w))] * 2
    ref = pair.mm.mask_head.loss_by_feat(
        *mm_out, batch_gt_instances=[R.gt_instance_data(*g, (h, w)) for g in gts],
        batch_img_metas=metas)

    model = pair.model
    model.train()
    try:
        inputs = []
        for img, (b, l, m) in zip(imgs, gts):
            inst = Instances((h, w))
            inst.gt_boxes = Boxes(b)
            inst.gt_classes = l
            inst.gt_masks = BitMasks(torch.from_numpy(m).bool())
            inputs.append({"image": img, "instances": inst})
        ours = model(inputs)
    finally:
        model.eval()
    rel = {k: abs(ours[k].item() - ref[k].item()) / max(abs(ref[k].item()), 1e-12)
           for k in ("loss_mask", "loss_cls")}
    print(f"\n{pair.name} losses ours "
          f"{ {k: round(v.item(), 6) for k, v in ours.items()} } mmdet "
          f"{ {k: round(v.item(), 6) for k, v in ref.items()} } rel diff {rel}")
    assert rel["loss_mask"] < TOL and rel["loss_cls"] < TOL


def test_losses_match_without_gt(pair):
    h, w = 64, 96
    img = _image(h, w, seed=6)
    mm_out = R.mmdet_head_forward(pair.mm, _normalise(img)[None], train=True)
    gt = R.gt_instance_data(torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long),
                            np.zeros((0, h, w), np.uint8), (h, w))
    ref = pair.mm.mask_head.loss_by_feat(
        *mm_out, batch_gt_instances=[gt],
        batch_img_metas=[dict(img_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w))])
    model = pair.model
    model.train()
    try:
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.zeros((0, 4)))
        inst.gt_classes = torch.zeros((0,), dtype=torch.long)
        inst.gt_masks = BitMasks(torch.zeros((0, h, w), dtype=torch.bool))
        ours = model([{"image": img, "instances": inst}])
    finally:
        model.eval()
    for k in ("loss_mask", "loss_cls"):
        assert torch.isfinite(ours[k])
        assert abs(ours[k].item() - ref[k].item()) <= TOL * max(abs(ref[k].item()), 1e-6), k


def test_mmdet2_checkpoint(tmp_path):
    """A 2.x-style checkpoint (meta["config"], img_norm_cfg, MultiScaleFlipAug, CLASSES)."""
    pair = Pair("SOLOHead", str(tmp_path), mmdet2=True)
    assert pair.classes == CLASSES
    c = pair.cfg
    assert c.INPUT.FORMAT == "RGB" and list(c.MODEL.PIXEL_STD) == R.STD
    assert (c.INPUT.MIN_SIZE_TEST, c.INPUT.MAX_SIZE_TEST) == (160, 256)
    img = _image(96, 128, seed=7)
    with torch.no_grad():
        mm_out = R.mmdet_head_forward(pair.mm, _normalise(img)[None], train=True)
        cls_logits, _ = _our_head_outputs(pair, img)
    for a, b in zip(cls_logits, mm_out[-1]):
        assert (a - b).abs().max().item() < TOL
