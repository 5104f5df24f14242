"""Heads' shapes, lazy projection == full projection, and the model's bad-input errors."""
import pytest
import torch
from detectron2.data import MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from torch.nn import functional as F

from conftest import tiny_cfg
from solo_d2.testing import full_mask_logits
from solo_d2.data.class_checks import check_dataset_classes

HEADS = ["SOLOHead", "DecoupledSOLOHead", "DecoupledSOLOLightHead"]


def _model(head, **kw):
    torch.manual_seed(0)
    return build_model(tiny_cfg(head, **kw))


def _input(h, w, boxes=((10, 20, 60, 70), (30, 40, 120, 100)), classes=(0, 2)):
    img = torch.randint(0, 256, (3, h, w)).float()
    inst = Instances((h, w))
    masks = torch.zeros(len(boxes), h, w, dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[y0:y1, x0:x1] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.tensor(classes, dtype=torch.int64)
    return {"image": img, "instances": inst, "height": h, "width": w}


@pytest.mark.parametrize("head", HEADS)
def test_head_output_shapes(head):
    model = _model(head).eval()
    images = model.preprocess_image([_input(128, 160), _input(96, 128)])
    feats = model.backbone(images.tensor)
    cls_logits, mask_inputs = model.head([feats[f] for f in model.head_in_features])
    assert [tuple(c.shape) for c in cls_logits] == [(2, 3, s, s) for s in [12, 10, 8, 6, 4]]
    # padded 128x160: levels at strides 8, 8, 16, 32, 32 give masks at 1/4, 1/4, 1/8, 1/16, 1/16
    sizes = [model.head.level_mask_size(mask_inputs, lvl) for lvl in range(5)]
    assert sizes == [(32, 40), (32, 40), (16, 20), (8, 10), (8, 10)]


@pytest.mark.parametrize("head", HEADS)
def test_lazy_projection_equals_full_projection(head):
    model = _model(head).eval()
    with torch.no_grad():
        images = model.preprocess_image([_input(128, 160), _input(128, 160)])
        feats = model.backbone(images.tensor)
        _, mask_inputs = model.head([feats[f] for f in model.head_in_features])
        for lvl, s in enumerate(model.head.num_grids):
            cells = torch.tensor([0, 1, s + 2, s * s - 1, 1])
            batch = torch.tensor([0, 1, 1, 0, 0])
            full = full_mask_logits(model.head, mask_inputs, lvl)
            if head == "SOLOHead":
                ref = full.sigmoid()[batch, cells]
            else:
                fx, fy = full
                ref = fy.sigmoid()[batch, cells // s] * fx.sigmoid()[batch, cells % s]
            lazy = model.head.mask_probs(mask_inputs, lvl, batch, cells)
            assert torch.allclose(lazy, ref, atol=1e-6)
            out_size = (32, 40)
            lazy_up = model.head.mask_probs(mask_inputs, lvl, batch, cells, out_size)
            if head == "SOLOHead":
                ref_up = F.interpolate(full.sigmoid(), size=out_size, mode="bilinear")[batch, cells]
            else:
                up = lambda t: F.interpolate(t.sigmoid(), size=out_size, mode="bilinear")
                ref_up = up(fy)[batch, cells // s] * up(fx)[batch, cells % s]
            assert torch.allclose(lazy_up, ref_up, atol=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_training_losses_finite_with_an_empty_image(head):
    model = _model(head).train()
    empty = _input(128, 128, boxes=(), classes=())
    losses = model([_input(128, 160), empty])
    assert set(losses) == {"loss_mask", "loss_cls"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # every parameter of the head receives a gradient (DDP needs them in the graph)
    assert all(p.grad is not None for p in model.head.parameters())
    only_empty = model([empty, empty])
    assert all(torch.isfinite(v) for v in only_empty.values())
    assert only_empty["loss_mask"].item() == 0.0


def test_batched_inference_of_different_sizes_returns_original_sizes():
    model = _model("SOLOHead").eval()
    model.head.conv_cls.bias.data.fill_(3.0)  # make candidates pass the score threshold
    for conv in model.head.conv_mask_list:
        conv.bias.data.fill_(1.0)  # and their masks cover pixels
    inputs = [_input(128, 160), _input(96, 112)]
    inputs[0].update(height=256, width=320)
    with torch.no_grad():
        out = model(inputs)
    assert [o["instances"].image_size for o in out] == [(256, 320), (96, 112)]
    for o in out:
        inst = o["instances"]
        assert len(inst) > 0 and inst.pred_masks.dtype == torch.bool
        assert inst.pred_masks.shape[1:] == inst.image_size
        assert inst.has("pred_boxes") and inst.has("scores") and inst.has("pred_classes")
        assert len(inst) <= 100


def test_unknown_head_name_lists_valid_names():
    cfg = tiny_cfg("NoSuchHead")
    with pytest.raises(ValueError, match="NoSuchHead.*DecoupledSOLOHead.*SOLOHead"):
        build_model(cfg)


def test_class_count_mismatch_names_both_numbers():
    # the trainers check the datasets (solo_d2.data.class_checks, before iteration 0);
    # building the model reads no dataset catalog
    MetadataCatalog.get("solo_test_5cls").thing_classes = list("abcde")
    cfg = tiny_cfg(num_classes=3)
    cfg.DATASETS.TRAIN = ("solo_test_5cls",)
    assert build_model(cfg).num_classes == 3
    with pytest.raises(ValueError, match="5 classes.*NUM_CLASSES is 3"):
        check_dataset_classes(cfg.DATASETS.TRAIN, cfg.MODEL.SOLO.NUM_CLASSES)


def test_training_without_masks_says_what_to_set():
    cfg = tiny_cfg()
    cfg.MODEL.MASK_ON = False
    with pytest.raises(ValueError, match="MODEL.MASK_ON True"):
        build_model(cfg)
    model = _model("SOLOHead").train()
    x = _input(128, 128)
    x["instances"].remove("gt_masks")
    with pytest.raises(ValueError, match="no gt_masks.*segmentation"):
        model([x])


def test_out_of_range_gt_class_is_reported():
    model = _model("SOLOHead").train()
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        model([_input(128, 128, classes=(0, 5))])
