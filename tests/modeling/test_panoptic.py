"""PanopticSOLO: Panoptic FPN's outputs (structure and types), Detectron2's merge with the
MODEL.PANOPTIC_FPN.COMBINE keys, the stuff loss, the shared-trunk option and mixed precision."""
import copy

import pytest
import torch
from detectron2 import model_zoo as d2_zoo
from detectron2.config import instantiate
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch import panoptic_fpn
from detectron2.structures import BitMasks, Boxes, Instances
from torch.nn import functional as F

from conftest import make_head_confident, tiny_cfg, tiny_panoptic_cfg
from solo_d2.modeling import panoptic


def panoptic_cfg(in_features=("p2", "p3", "p4", "p5"), **combine):
    return tiny_panoptic_cfg(in_features, **combine)


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_model(cfg)
    make_head_confident(model, cls_bias=-1.0)  # candidates and masks to merge
    return model.eval()


def images(seed=3):
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.randint(0, 256, (3, 64, 96), generator=g).float(),
             "height": 96, "width": 144}]


@pytest.fixture(scope="module")
def panoptic_fpn_model():
    """Detectron2's own Panoptic FPN (its configs/common/models/panoptic_fpn.py), untrained."""
    cfg = d2_zoo.get_config("common/models/panoptic_fpn.py").model
    cfg.backbone.bottom_up.stages.depth = 18
    del cfg.backbone.bottom_up.stages.stride_in_1x1  # basic blocks have none
    cfg.backbone.bottom_up.stages.norm = "FrozenBN"
    cfg.backbone.bottom_up.stem.norm = "FrozenBN"
    cfg.backbone.bottom_up.freeze_at = 0
    cfg.roi_heads.num_classes = 3
    cfg.sem_seg_head.num_classes = 4
    torch.manual_seed(0)
    model = instantiate(cfg).eval()
    model.roi_heads.box_predictor.test_score_thresh = 0.0  # some instances to compare
    return model


def _structure(out):
    inst = out["instances"]
    ids, segments = out["panoptic_seg"]
    return {
        "keys": sorted(out),
        "sem_seg": (type(out["sem_seg"]), out["sem_seg"].dtype, out["sem_seg"].dim()),
        "instances": (type(inst), inst.image_size,
                      sorted((k, v.dtype if torch.is_tensor(v) else type(v))
                             for k, v in inst.get_fields().items())),
        "panoptic_seg": (type(out["panoptic_seg"]), type(ids), ids.dtype, tuple(ids.shape),
                         type(segments)),
        "segment_keys": sorted({(s["isthing"], tuple(sorted(s))) for s in segments}),
    }


def test_outputs_are_panoptic_fpns(panoptic_fpn_model):
    ours = build(panoptic_cfg(STUFF_AREA_LIMIT=0, INSTANCES_CONFIDENCE_THRESH=0.0))
    fpn = copy.copy(panoptic_fpn_model)  # both kinds of segment in both outputs
    fpn.combine_stuff_area_thresh = fpn.combine_instances_score_thresh = 0
    with torch.no_grad():
        a, b = ours(images())[0], fpn(images())[0]
    assert len(a["instances"]) > 0 and len(b["instances"]) > 0
    sa, sb = _structure(a), _structure(b)
    # boxes: Boxes either way; the masks Panoptic FPN pastes are bool, as ours
    assert sa == sb
    assert a["sem_seg"].shape == b["sem_seg"].shape == (4, 96, 144)
    assert a["panoptic_seg"][0].shape == (96, 144)


def test_merge_is_detectron2s_with_the_combine_keys(panoptic_fpn_model):
    """Each COMBINE key changes PanopticSOLO's merge as it changes Panoptic FPN's: both run
    Detectron2's combine_semantic_and_instance_outputs on their own outputs."""
    assert panoptic.combine_semantic_and_instance_outputs is \
        panoptic_fpn.combine_semantic_and_instance_outputs
    settings = [
        {},  # Detectron2's defaults
        {"STUFF_AREA_LIMIT": 10 ** 9},  # no stuff segment
        {"INSTANCES_CONFIDENCE_THRESH": 1.01},  # no thing segment
        {"INSTANCES_CONFIDENCE_THRESH": 0.0, "OVERLAP_THRESH": 0.0, "STUFF_AREA_LIMIT": 0},
    ]
    seen = set()
    for combine in settings:
        ours = build(panoptic_cfg(**combine))
        fpn = copy.copy(panoptic_fpn_model)
        fpn.combine_overlap_thresh = ours.combine_overlap_thresh
        fpn.combine_stuff_area_thresh = ours.combine_stuff_area_thresh
        fpn.combine_instances_score_thresh = ours.combine_instances_score_thresh
        with torch.no_grad():
            for model in (ours, fpn):
                out = model(images())[0]
                ids, segments = out["panoptic_seg"]
                # the merge of the model's own outputs, by Detectron2's function
                ref_ids, ref_segments = panoptic_fpn.combine_semantic_and_instance_outputs(
                    out["instances"], out["sem_seg"].argmax(0), ours.combine_overlap_thresh,
                    ours.combine_stuff_area_thresh, ours.combine_instances_score_thresh)
                assert torch.equal(ids, ref_ids) and segments == ref_segments
                kinds = {s["isthing"] for s in segments}
                if "STUFF_AREA_LIMIT" in combine and combine["STUFF_AREA_LIMIT"] > 10 ** 8:
                    assert False not in kinds
                if combine.get("INSTANCES_CONFIDENCE_THRESH", 0) > 1:
                    assert True not in kinds
                seen.add((model is ours, tuple(sorted(kinds))))
    assert {(True, (False, True)), (False, (False, True))} <= seen


def test_combine_disabled_leaves_panoptic_seg_out():
    out = build(panoptic_cfg(ENABLED=False))(images())[0]
    assert sorted(out) == ["instances", "sem_seg"]


def _train_batch():
    g = torch.Generator().manual_seed(1)
    batch = []
    for h, w in ((64, 96), (96, 64)):
        inst = Instances((h, w))
        masks = torch.zeros(1, h, w, dtype=torch.bool)
        masks[0, 10:40, 12:44] = True
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = Boxes(torch.tensor([[12.0, 10, 44, 40]]))
        inst.gt_classes = torch.tensor([1])
        sem = torch.randint(0, 4, (h, w), generator=g)
        sem[:5] = 255
        batch.append({"image": torch.randint(0, 256, (3, h, w), generator=g).float(),
                      "instances": inst, "sem_seg": sem})
    return batch


def test_stuff_loss_is_cross_entropy_over_the_padded_batch():
    model = build(panoptic_cfg()).train()
    batch = _train_batch()
    images_, cls_logits, mask_inputs, sem_logits = model.forward_panoptic(batch)
    losses = model(batch)
    # by hand: logits x4 (bilinear), targets padded with 255 to the 96x96 batch
    target = torch.full((2, 96, 96), 255, dtype=torch.long)
    for i, x in enumerate(batch):
        h, w = x["sem_seg"].shape
        target[i, :h, :w] = x["sem_seg"]
    up = F.interpolate(sem_logits, scale_factor=4, mode="bilinear", align_corners=False)
    expected = F.cross_entropy(up, target, ignore_index=255) * model.sem_seg_head.loss_weight
    assert torch.allclose(losses["loss_sem_seg"], expected, rtol=1e-5)
    assert set(losses) == {"loss_mask", "loss_cls", "loss_sem_seg"}


@pytest.mark.parametrize("shared", [False, True])
def test_stuff_branch_parallel_or_sharing_the_mask_feature_trunk(shared):
    cfg = panoptic_cfg(["mask_features"] if shared else ["p2", "p3", "p4", "p5"])
    model = build(cfg).train()
    assert model.stuff_from_mask_features is shared
    model.zero_grad()
    model(_train_batch())["loss_sem_seg"].backward()
    trunk = model.head.mask_feature_head.conv_pred.weight  # the mask-feature branch's last conv
    reached = trunk.grad is not None and bool(trunk.grad.abs().sum() > 0)
    assert reached is shared


def test_shared_trunk_needs_solov2():
    cfg = panoptic_cfg(["mask_features"])
    cfg.MODEL.SOLO.HEAD_NAME = "SOLOHead"
    with pytest.raises(ValueError, match="mask_features"):
        build_model(cfg)


def test_mixed_precision_convs_low_losses_and_merge_fp32():
    cfg = panoptic_cfg()
    model = build(cfg).train()
    captured = {}
    model.sem_seg_head.predictor.register_forward_hook(
        lambda m, i, o: captured.update(dtype=o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(_train_batch())
    assert captured["dtype"] == torch.bfloat16  # the stuff branch's convs ran in bf16
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    cfg.MODEL.SOLO.TEST.AMP = "bfloat16"
    out = build(cfg)(images())[0]
    assert out["sem_seg"].dtype == torch.float32
    assert out["panoptic_seg"][0].dtype == torch.int32


@pytest.mark.parametrize("head,config", [("SOLOHead", "SOLO_R50_1x.yaml"),
                                         ("DecoupledSOLOHead", "Decoupled_SOLO_R50_1x.yaml")])
def test_the_branch_fits_solo_and_decoupled_solo(head, config):
    """The parallel branch on p2..p5 needs nothing of SOLOv2's: SOLO and Decoupled SOLO train
    and predict panoptic results with it."""
    cfg = tiny_panoptic_cfg()
    base = tiny_cfg(head, config=config)
    cfg.MODEL.SOLO = base.MODEL.SOLO
    model = build(cfg).train()
    losses = model(_train_batch())
    assert set(losses) == {"loss_mask", "loss_cls", "loss_sem_seg"}
    assert all(torch.isfinite(v) for v in losses.values())
    out = model.eval()(images())[0]
    assert sorted(out) == ["instances", "panoptic_seg", "sem_seg"]
    assert type(model.head).__name__ == head
