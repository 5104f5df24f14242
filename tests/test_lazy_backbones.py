"""SOLO on any Detectron2 backbone, and the large-scale-jitter recipes.

The ViTDet (ViT + SimpleFeaturePyramid) and RegNetY SOLOv2 recipes, shrunk (tiny widths and
depth, 128 px images), build, train two iterations through LazySOLOTrainer and predict
through SOLOPredictor on the CPU. The head takes the channels and the number of levels of
the backbone it is built on; mismatches are errors at build time that name the levels. The
LSJ recipes state mmdet's numbers (read from the installed mmdet's own config)."""
import copy
import math
import os
import re

import cv2
import numpy as np
import pytest
import torch
from detectron2.config import LazyCall as L
from detectron2.config import instantiate
from detectron2.data import transforms as T
from detectron2.modeling.backbone import ResNet
from detectron2.structures import BoxMode

import solo_d2
from conftest import capture_logs, write_test_image, write_toy_coco
from solo_d2.engine import LazySOLOTrainer, SOLOPredictor

DATASET = "solo_toy_backbones"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("toy_backbones"))
    return [[DATASET, write_toy_coco(root, num_images=4), os.path.join(root, "images")]]


def _tiny_solov2(cfg, toy_entries, out: str):
    """``cfg`` (a shipped recipe) with a tiny head, the toy data at <= 128 px, 2 iterations of
    batch 2 on the CPU, from scratch; its backbone is the caller's to shrink."""
    m = cfg.model
    m.num_classes = 3
    m.head.feat_channels = 32
    m.head.stacked_convs = 2
    m.head.num_grids = [12, 10, 8, 6, 4]
    m.head.mask_feat_channels = 32
    m.head.mask_out_channels = 32
    m.scale_ranges = [[1, 32], [16, 64], [32, 128], [64, 256], [128, 512]]
    d = cfg.dataloader
    d.register_coco_instances = toy_entries
    d.train.dataset.names = d.test.dataset.names = DATASET
    size = 128
    d.train.mapper.augmentations = [  # the recipe's LSJ, at 128 px
        L(T.ResizeScale)(min_scale=0.5, max_scale=1.5, target_height=size, target_width=size),
        L(T.FixedSizeCrop)(crop_size=(size, size), pad=False),
        L(T.RandomFlip)(horizontal=True),
    ]
    d.test.mapper.augmentations[0].short_edge_length = size
    d.test.mapper.augmentations[0].max_size = size
    d.train.total_batch_size = 2
    d.train.num_workers = d.test.num_workers = 0
    t = cfg.train
    t.device, t.init_checkpoint, t.output_dir = "cpu", "", out
    t.max_iter, t.eval_period, t.log_period, t.checkpointer.period = 2, 0, 1, 100
    return cfg


def _shrink_vit(cfg, levels: int = 5):
    b = cfg.model.backbone
    b.net.update(embed_dim=64, depth=2, num_heads=2, window_size=4, window_block_indexes=[0],
                 img_size=128, drop_path_rate=0.0, mlp_ratio=2.0)
    b.out_channels = 32
    b.square_pad = 128
    if levels == 4:  # no max-pooled p6
        b.top_block = None
    return cfg


def _shrink_regnet(cfg):
    b = cfg.model.backbone
    b.bottom_up.update(stem_width=8, depth=4, w_a=12, w_0=8, w_m=1.5, group_width=8)
    b.out_channels = 32
    cfg.model.train_fixed_size = (128, 128)
    return cfg


def _train_and_predict(cfg, image_path: str):
    trainer = LazySOLOTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    cfg = copy.deepcopy(cfg)
    cfg.train.init_checkpoint = os.path.join(cfg.train.output_dir, "model_final.pth")
    predictor = SOLOPredictor(cfg)
    out = predictor(cv2.imread(image_path))["instances"]
    assert out.image_size == (96, 160) and out.pred_masks.shape[1:] == (96, 160)
    return trainer, predictor


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("img") / "img.png")
    write_test_image(path, 96, 160)
    return path


def test_vitdet_recipe_trains_and_predicts(toy, image_path, tmp_path):
    cfg = solo_d2.model_zoo.get_config("SOLOv2_ViTDet_B_LSJ.py")
    full = cfg.model.backbone.net
    assert (full.embed_dim, full.depth, full.num_heads, full.patch_size) == (768, 12, 12, 16)
    assert cfg.optimizer.params.lr_factor_func.keywords == {"num_layers": 12, "lr_decay_rate": 0.7}
    cfg = _tiny_solov2(_shrink_vit(cfg), toy, str(tmp_path))
    trainer, predictor = _train_and_predict(cfg, image_path)
    model = predictor.model
    assert type(model.backbone).__name__ == "SimpleFeaturePyramid"
    assert type(model.backbone.net).__name__ == "ViT"
    assert model.head.in_channels == 32 and model.strides == [8, 8, 16, 32, 32]
    # layer-wise lr decay of ViTDet: the first block learns 0.7^12 as fast as the head
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    lrs = {names[id(p)]: g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    head_lr = lrs["head.conv_cls.weight"]
    assert lrs["backbone.net.blocks.0.attn.qkv.weight"] == pytest.approx(head_lr * 0.7**12)


def test_regnet_recipe_trains_and_predicts(toy, image_path, tmp_path):
    cfg = solo_d2.model_zoo.get_config("SOLOv2_RegNetY_4GF_LSJ.py")
    full = cfg.model.backbone.bottom_up
    assert (full.depth, full.w_a, full.w_0, full.w_m, full.group_width, full.se_ratio) == \
        (22, 31.41, 96, 2.24, 64, 0.25)
    cfg = _tiny_solov2(_shrink_regnet(cfg), toy, str(tmp_path))
    _, predictor = _train_and_predict(cfg, image_path)
    model = predictor.model
    assert type(model.backbone.bottom_up).__name__ == "RegNet"
    assert sorted(model.backbone.output_shape()) == ["p2", "p3", "p4", "p5", "p6"]
    assert model.head.in_channels == 32


def test_head_adapts_to_the_levels_and_channels_it_reads(toy, tmp_path):
    """Four levels (no p6) of 48 channels: one grid per level, strides derived."""
    cfg = _tiny_solov2(_shrink_vit(solo_d2.model_zoo.get_config("SOLOv2_ViTDet_B_LSJ.py"), 4),
                       toy, str(tmp_path))
    m = cfg.model
    m.backbone.out_channels = 48
    m.head_in_features = ["p2", "p3", "p4", "p5"]
    m.head.num_grids = [12, 10, 8, 6]
    m.scale_ranges = [[1, 32], [16, 64], [32, 128], [64, 512]]
    m.strides = None
    model = instantiate(m)
    assert model.head.in_channels == 48 and model.head.num_levels == 4
    # p2 halved to stride 8; p5 resized to p4's size (stride 16)
    assert model.strides == [8, 8, 16, 16]
    assert model.head.mask_feature_head.convs_all_levels[0][0].weight.shape[1] == 48
    trainer = LazySOLOTrainer(cfg)
    trainer.train()
    assert all(math.isfinite(v) for v, _ in trainer.storage.history("total_loss").values())


def _tiny_r18_model_cfg():
    cfg = solo_d2.model_zoo.get_config("SOLO_R50_1x.py")
    m = cfg.model
    m.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="FrozenBN")
    m.backbone.out_channels = 32
    m.head.feat_channels = 32
    m.head.stacked_convs = 1
    return m


def test_mismatches_are_clear_errors_naming_the_levels(caplog):
    m = _tiny_r18_model_cfg()
    m.head_in_features = ["p2", "p3", "p4", "p5"]
    with pytest.raises(ValueError, match=r"has 5 grid levels .* but reads 4 feature levels: "
                       r"p2 \(32 channels, stride 4\), p3 \(32 channels, stride 8\)"):
        instantiate(m)
    m = _tiny_r18_model_cfg()
    m.backbone = m.backbone.bottom_up  # the ResNet alone: res2..res5 of 64..512 channels
    m.head_in_features = ["res2", "res3", "res4", "res5"]
    m.head.num_grids = [12, 10, 8, 6]
    with pytest.raises(ValueError, match=r"need equal channels; got res2 \(64 channels, stride "
                       r"4\), res3 \(128 channels, stride 8\), res4 \(256"):
        instantiate(m)
    m = _tiny_r18_model_cfg()
    m.strides = [8, 16, 16, 32, 64]
    with capture_logs(caplog):  # also after an in-process command line set up solo_d2's logger
        assert instantiate(m).strides == [8, 16, 16, 32, 64]  # mmdet takes them as set
    assert re.search(r"strides .* \[8, 16, 16, 32, 64\] do not fit the levels read, p2 \(32 "
                     r"channels, stride 4\).* which gives \[8, 8, 16, 32, 32\]", caplog.text)
    m = _tiny_r18_model_cfg()
    m.scale_ranges = [[1, 96], [48, 192]]
    with pytest.raises(ValueError, match=r"reads 5 levels \['p2', 'p3', 'p4', 'p5', 'p6'\] .* "
                       r"scale_ranges has 2 entries"):
        instantiate(m)
    m = _tiny_r18_model_cfg()
    m.head = instantiate(m.head)  # built alone (no input_shape): SOLO builds it
    model = instantiate(m)
    assert model.head.is_built and model.head.in_channels == 32


@pytest.mark.parametrize("name", ["SOLO_R50_LSJ_200e.py", "SOLOv2_R50_LSJ_200e.py"])
def test_lsj_recipes_state_mmdets_numbers(name):
    """Read against mmdet 3.3.0's solo_r50_fpn_8xb8-lsj-200e_coco.py itself."""
    import mmdet

    from solo_d2.convert.mmdet import load_mmdet_config_file

    mm = load_mmdet_config_file(os.path.join(
        os.path.dirname(mmdet.__file__), ".mim", "configs", "solo",
        "solo_r50_fpn_8xb8-lsj-200e_coco.py"))
    cfg = solo_d2.model_zoo.get_config(name)
    opt, t, d = cfg.optimizer, cfg.train, cfg.dataloader
    batch = mm["train_dataloader"]["batch_size"] * 8  # 8 GPUs (auto_scale_lr: 64)
    assert batch == mm["auto_scale_lr"]["base_batch_size"] == d.train.total_batch_size == 64
    mm_opt = mm["optim_wrapper"]["optimizer"]
    assert (opt.lr, opt.momentum, opt.weight_decay) == \
        (mm_opt["lr"], mm_opt["momentum"], mm_opt["weight_decay"])
    assert opt.params.weight_decay_norm == mm_opt["weight_decay"]  # mmdet decays norms too
    assert mm["optim_wrapper"]["type"] == "AmpOptimWrapper" and t.amp.enabled
    clip = mm["optim_wrapper"]["clip_grad"]
    assert t.clip_grad.enabled and (t.clip_grad.max_norm, t.clip_grad.norm_type) == \
        (clip["max_norm"], clip["norm_type"])
    # schedule: mmdet's epochs are 8-fold repeats of COCO; ours are epochs of 1,833 iterations
    per_epoch = math.ceil(117266 / 64)
    repeats = mm["train_dataloader"]["dataset"]["times"]
    warm, steps = mm["param_scheduler"]
    assert per_epoch == 1833 and t.max_iter == mm["max_epochs"] * repeats * per_epoch == 366600
    sched = cfg.lr_multiplier
    assert list(sched.scheduler.milestones) == [m * repeats * per_epoch for m in steps["milestones"]]
    assert list(sched.scheduler["values"]) == [1.0, 0.1, 0.1**2] and steps["gamma"] == 0.1
    assert sched.warmup_factor == warm["start_factor"]
    assert sched.warmup_length * t.max_iter == pytest.approx(warm["end"])
    # data: scale to a 1024 x (0.1..2.0) square, crop 1024, flip; batches padded to 1024
    size = mm["image_size"]
    resize, crop, flip = d.train.mapper.augmentations
    mm_resize = next(x for x in mm["train_pipeline"] if x["type"] == "RandomResize")
    assert (resize.min_scale, resize.max_scale) == mm_resize["ratio_range"]
    assert (resize.target_height, resize.target_width) == size == tuple(crop.crop_size)
    assert crop.pad is False and flip.horizontal and d.train.mapper.recompute_boxes
    assert tuple(cfg.model.train_fixed_size) == mm["batch_augments"][0]["size"] == size
    test_resize = d.test.mapper.augmentations[0]
    assert (test_resize.short_edge_length, test_resize.max_size) == (800, 1333)
    # norm: a frozen, ImageNet-initialised ResNet (mmdet frozen_stages=1, norm_eval), GN head
    bb = cfg.model.backbone.bottom_up
    assert bb.freeze_at == 2 and bb.stages.norm == bb.stem.norm == "FrozenBN"
    assert cfg.model.head.norm == "GN" and t.init_checkpoint == "torchvision://resnet50"


def test_lsj_mapping_and_fixed_size_batches(tmp_path):
    cfg = solo_d2.model_zoo.get_config("SOLO_R50_LSJ_200e.py")
    mapper = instantiate(cfg.dataloader.train.mapper)
    path = str(tmp_path / "big.png")
    cv2.imwrite(path, np.full((600, 900, 3), 90, np.uint8))
    record = {"file_name": path, "height": 600, "width": 900, "image_id": 0, "annotations": [
        {"bbox": [100, 100, 600, 400], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
         "segmentation": [[100, 100, 700, 100, 700, 500, 100, 500]], "iscrowd": 0}]}
    sizes = set()
    for seed in range(12):
        np.random.seed(seed)
        out = mapper(dict(record))
        h, w = out["image"].shape[1:]
        assert h <= 1024 and w <= 1024
        sizes.add((h, w))
        inst = out["instances"]
        if len(inst):  # boxes recomputed from the cropped masks: tight on them
            assert torch.equal(inst.gt_boxes.tensor, inst.gt_masks.get_bounding_boxes().tensor)
    assert len(sizes) > 3 and (1024, 1024) in sizes  # jitter, and crops at 2x
    m = _tiny_r18_model_cfg()
    m.train_fixed_size = (128, 160)
    model = instantiate(m).train()
    batch = model.preprocess_image([{"image": torch.zeros(3, 100, 90)}])
    assert tuple(batch.tensor.shape[-2:]) == (128, 160) and batch.image_sizes == [(100, 90)]
    with pytest.raises(ValueError, match=r"160x96 \(padded\) exceeds train_fixed_size 128x160"):
        model.preprocess_image([{"image": torch.zeros(3, 150, 90)}])
    assert tuple(model.eval().preprocess_image([{"image": torch.zeros(3, 100, 90)}])
                 .tensor.shape[-2:]) == (128, 96)  # test batches: size divisibility only
