"""The mmdet 3.3.0 reference harness: mmdet's SOLO importable without mmcv's compiled ops,
small SOLO configs, mmdet models built, saved as mmdet saves them and run up to their head.

The parity tests and ``tools/benchmark.py --vs-mmdet`` use it (as Detectron2 keeps
``detectron2/utils/testing.py``); the model itself never does. ``import_mmdet()`` returns None
when mmdet is not importable (:data:`import_error` then says why), so that callers can skip or
refuse. Which heads exist, which mmdet detector each belongs to and which mmdet config it
comes from is read from :data:`solo_d2.convert.mmdet.MMDET_HEADS`. Nothing here is copied
from mmdet: it builds mmdet's own modules from config dicts and calls their public methods.
"""
import copy
import logging
import sys
import types
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from solo_d2.convert.mmdet import MMDetHead, load_mmdet_config_file, mmdet_head

__all__ = [
    "MEAN",
    "STD",
    "NUM_GRIDS",
    "NUM_CLASSES",
    "SOLOV2_VARIANTS",
    "import_mmdet",
    "import_error",
    "small_solo_config",
    "config_text",
    "build_mmdet_model",
    "shift_head_biases",
    "save_mmdet_checkpoint",
    "mmdet_head_forward",
    "gt_instance_data",
]

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
NUM_GRIDS = [12, 10, 8, 6, 4]
NUM_CLASSES = 4

_MMDET = None
# why the last import_mmdet() returned None ("" while it has not failed)
import_error: str = ""


def _stub_mmcv_compiled_ops() -> None:
    """mmcv-lite has no compiled ops (``mmcv._ext``) but mmdet imports them at module level.
    SOLO uses none of them: register a module whose every attribute raises when called."""
    try:
        import mmcv._ext  # noqa: F401  full mmcv: nothing to do
        return
    except ImportError:
        pass

    class _NoCompiledOps(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)

            def unavailable(*args, **kwargs):
                raise RuntimeError(f"compiled mmcv op {name!r} is unavailable (mmcv-lite)")

            return unavailable

    sys.modules["mmcv._ext"] = _NoCompiledOps("mmcv._ext")


def import_mmdet():
    """Import mmdet (compiled mmcv ops stubbed) and register its modules; mmdet's model
    registry, or None when mmdet/mmcv/mmengine are not importable (:data:`import_error` then
    holds the ImportError's message)."""
    global _MMDET, import_error
    if _MMDET is not None:
        return _MMDET
    try:
        import mmcv  # noqa: F401
        import mmengine  # noqa: F401
    except ImportError as e:
        import_error = str(e)
        return None
    _stub_mmcv_compiled_ops()
    try:
        import mmdet  # noqa: F401
    except ImportError as e:
        import_error = str(e)
        return None
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    _MMDET = MODELS
    return MODELS


# SOLOv2 variants, scaled down from mmdet's solov2_r50_fpn (feat 512, 4 stacked convs, mask
# features 128 -> 256) and solov2-light (feat 256, 2 stacked convs, mask features 128 -> 128,
# larger scale ranges) by the same ratios. A variant is named "<head>" or "<head>-<variant>".
SOLOV2_VARIANTS = {
    "SOLOV2Head": dict(stacked_convs=3, feat_channels=64,
                       mask_feature_head=dict(feat_channels=32, out_channels=64)),
    "SOLOV2Head-light": dict(
        stacked_convs=2, feat_channels=32,
        scale_ranges=((1, 56), (28, 112), (56, 224), (112, 448), (224, 896)),
        mask_feature_head=dict(feat_channels=32, out_channels=32)),
}


def _described_head(head_type: str) -> Tuple[MMDetHead, Optional[Dict[str, Any]]]:
    """The MMDET_HEADS description of ``head_type`` ("<head>" or "<head>-<variant>") and, for
    a SOLOv2 head, its scaled-down settings from :data:`SOLOV2_VARIANTS`."""
    head = mmdet_head(head_type.split("-", 1)[0])
    if head.detector != "SOLOv2":
        if head_type != head.name:
            raise ValueError(f"no small variant {head_type!r} of {head.name}; only SOLOv2 "
                             f"heads have variants ({sorted(SOLOV2_VARIANTS)})")
        return head, None
    if head_type not in SOLOV2_VARIANTS:
        raise ValueError(f"no small SOLOv2 variant {head_type!r}; known: "
                         f"{sorted(SOLOV2_VARIANTS)}")
    return head, copy.deepcopy(SOLOV2_VARIANTS[head_type])


def _reference_losses(head: MMDetHead) -> Dict[str, Any]:
    """``loss_mask`` and ``loss_cls`` of the head's mmdet reference config (e.g. the decoupled
    heads' dice loss takes probabilities: ``activate=False``)."""
    mask_head = load_mmdet_config_file(head.reference_config_path())["model"]["mask_head"]
    return {k: copy.deepcopy(mask_head[k]) for k in ("loss_mask", "loss_cls")}


def small_solo_config(head_type: str = "SOLOHead", mmdet2: bool = False) -> Dict[str, Any]:
    """A full mmdet-style config (as top-level variables) of a small SOLO model.

    ResNet-18 + FPN(64) + head with 64 channels, 2 stacked convs, 5 small grids, 4 classes;
    the detector type and the losses are those of the head's mmdet reference config
    (:data:`~solo_d2.convert.mmdet.MMDET_HEADS`). ``mmdet2=True`` gives a 2.x-style
    config (img_norm_cfg, data.test with MultiScaleFlipAug). ``head_type`` is a name in
    MMDET_HEADS or, for SOLOv2, a key of :data:`SOLOV2_VARIANTS`.
    """
    described, v2 = _described_head(head_type)
    head = dict(
        type=described.name,
        num_classes=NUM_CLASSES,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[8, 8, 16, 32, 32],
        scale_ranges=((1, 32), (16, 64), (32, 128), (64, 256), (128, 512)),
        pos_scale=0.2,
        num_grids=list(NUM_GRIDS),
        cls_down_index=0,
        **_reference_losses(described),
        norm_cfg=dict(type="GN", num_groups=32, requires_grad=True),
    )
    if v2:
        mf = dict(feat_channels=32, start_level=0, end_level=3, out_channels=64, mask_stride=4,
                  norm_cfg=dict(type="GN", num_groups=32, requires_grad=True))
        mf.update(v2.pop("mask_feature_head"))
        head.update(v2, mask_feature_head=mf)
    model = dict(
        type=described.detector,
        backbone=dict(
            type="ResNet", depth=18, num_stages=4, out_indices=(0, 1, 2, 3), frozen_stages=1,
            norm_cfg=dict(type="BN", requires_grad=True), norm_eval=True, style="pytorch",
            init_cfg=None,
        ),
        neck=dict(type="FPN", in_channels=[64, 128, 256, 512], out_channels=64, start_level=0,
                  num_outs=5),
        mask_head=head,
        test_cfg=dict(nms_pre=500, score_thr=0.1, mask_thr=0.5, filter_thr=0.05,
                      kernel="gaussian", sigma=2.0, max_per_img=100),
    )
    if mmdet2:
        norm = dict(mean=list(MEAN), std=list(STD), to_rgb=True)
        test_pipeline = [
            dict(type="LoadImageFromFile"),
            dict(type="MultiScaleFlipAug", img_scale=(256, 160), flip=False, transforms=[
                dict(type="Resize", keep_ratio=True), dict(type="RandomFlip"),
                dict(type="Normalize", **norm), dict(type="Pad", size_divisor=32),
                dict(type="ImageToTensor", keys=["img"]), dict(type="Collect", keys=["img"]),
            ]),
        ]
        return dict(model=model, img_norm_cfg=norm, test_pipeline=test_pipeline,
                    data=dict(samples_per_gpu=2, test=dict(type="CocoDataset",
                                                           pipeline=test_pipeline)))
    model["data_preprocessor"] = dict(type="DetDataPreprocessor", mean=list(MEAN),
                                      std=list(STD), bgr_to_rgb=True, pad_mask=True,
                                      pad_size_divisor=32)
    test_pipeline = [
        dict(type="LoadImageFromFile", backend_args=None),
        dict(type="Resize", scale=(256, 160), keep_ratio=True),
        dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
        dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape",
                                              "scale_factor")),
    ]
    return dict(
        default_scope="mmdet",
        model=model,
        test_pipeline=test_pipeline,
        test_dataloader=dict(batch_size=1, dataset=dict(type="CocoDataset",
                                                        pipeline=test_pipeline)),
    )


def config_text(cfg: Dict[str, Any]) -> str:
    """The config as mmengine writes it into checkpoints (``Config.pretty_text``)."""
    from mmengine.config import Config

    return Config(copy.deepcopy(cfg)).pretty_text


def build_mmdet_model(cfg: Dict[str, Any], seed: int = 0) -> torch.nn.Module:
    """mmdet's SOLO from the config, randomly initialised with non-trivial BN/GN statistics.

    The backbone is put in eval mode (norm_eval), the model's head stays in the mode set later.
    """
    MODELS = import_mmdet()
    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights logs every tensor
    torch.manual_seed(seed)
    from mmengine.config import ConfigDict

    model = MODELS.build(ConfigDict(copy.deepcopy(cfg["model"])))
    model.init_weights()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    model.eval()
    return model


def shift_head_biases(model, cls_shift: float, mask_shift: float, cls_gain: float = 1.0) -> None:
    """Add constants to the category conv bias and every mask projection bias, in place, so
    that a random model yields a realistic number of candidates and non-empty masks. SOLOv2
    has no mask projection: its dynamic-kernel conv's weights are multiplied by ``mask_shift``
    instead (random kernels are ~0, giving masks of probability 0.5 everywhere).
    ``cls_gain`` multiplies the category conv's weights (spreads the scores over the cells)."""
    head = model.mask_head
    with torch.no_grad():
        head.conv_cls.weight *= cls_gain
        head.conv_cls.bias += cls_shift
        if hasattr(head, "conv_kernel"):
            head.conv_kernel.weight *= mask_shift
        for name in ("conv_mask_list", "conv_mask_list_x", "conv_mask_list_y"):
            for conv in getattr(head, name, []):
                conv.bias += mask_shift


def save_mmdet_checkpoint(model, cfg, path: str, mmdet2: bool = False,
                          classes: Optional[List[str]] = None, published: bool = False) -> None:
    """Save as mmdet does: {"state_dict", "meta"} with the config text in meta["cfg"] (3.x)
    or meta["config"] (2.x) and the class names in dataset_meta / CLASSES. ``published``:
    in torch's legacy (non-zip) format, as mmdet's ``tools/model_converters/publish_model.py``
    writes the checkpoints mmdet publishes."""
    meta: Dict[str, Any] = {}
    text = config_text(cfg)
    if mmdet2:
        meta.update(config=text, mmdet_version="2.28.2")
        if classes:
            meta["CLASSES"] = tuple(classes)
    else:
        meta.update(cfg=text, mmdet_version="3.3.0")
        if classes:
            meta["dataset_meta"] = dict(classes=tuple(classes))
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path,
               _use_new_zipfile_serialization=not published)


def mmdet_head_forward(model, inputs: torch.Tensor, train: bool):
    """Backbone+neck in eval mode (norm_eval), head in train or eval mode; head outputs."""
    model.eval()
    model.mask_head.train(train)
    feats = model.extract_feat(inputs)
    return model.mask_head(feats)


def gt_instance_data(boxes: torch.Tensor, labels: torch.Tensor, masks: np.ndarray, pad_hw):
    """mmdet gt InstanceData with BitmapMasks padded to the batch shape."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    n, h, w = masks.shape
    padded = np.zeros((n, *pad_hw), np.uint8)
    padded[:, :h, :w] = masks
    gt = InstanceData()
    gt.bboxes = boxes.float()
    gt.labels = labels.long()
    gt.masks = BitmapMasks(padded, *pad_hw)
    return gt
