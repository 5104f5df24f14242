"""A yaml config (``get_cfg()`` + ``add_solo_config``) as the LazyConfig that builds the same
model, data, optimizer, schedule and training settings (the shape of ``configs/*.py``).

The model's settings come from the yaml front door's own translation
(:func:`~solo_d2.modeling.meta_arch.solo_settings`, each head's ``from_config``) and the
mappers' from ``SOLODatasetMapper.from_config``, so that there is one reading of each key. The
backbone must be Detectron2's ResNet-FPN (``build_resnet_fpn_backbone``, as every solo_d2 and
converted mmdet config); what a LazyConfig cannot express is a ValueError naming the key.
"""
import inspect
from typing import Any, Dict

import torch
from detectron2.config import CfgNode, LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from detectron2.data import (
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.modeling.backbone import FPN, BasicStem, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.solver import WarmupParamScheduler
from detectron2.solver.build import get_default_optimizer_params
from fvcore.common.param_scheduler import MultiStepParamScheduler
from omegaconf import DictConfig, OmegaConf

from ..data.mapper import SOLODatasetMapper
from ..data.panoptic import PanopticLabels
from ..data.panoptic_mapper import PanopticDatasetMapper
from ..evaluation import SOLOCOCOEvaluator
from ..evaluation.panoptic import build_panoptic_evaluator
from ..layers.precision import AMP_DTYPES
from ..modeling import SOLO, SOLO_HEAD_REGISTRY, PanopticSOLO
from ..modeling.backbone import resnet_stages
from ..modeling.meta_arch import solo_settings
from ..modeling.panoptic import MASK_FEATURES, panoptic_settings

__all__ = ["lazy_call_of", "yaml_to_lazy"]


def lazy_call_of(obj: Any) -> DictConfig:
    """``L(type(obj))(...)`` with the arguments of its constructor that ``obj`` keeps as
    attributes of the same name (Detectron2's augmentations do, as their ``repr`` shows)."""
    params = inspect.signature(type(obj).__init__).parameters
    kwargs = {n: getattr(obj, n) for n in params if n != "self" and hasattr(obj, n)}
    return L(type(obj))(**{k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()})


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"cannot write this yaml config as a LazyConfig: {message}")


def _backbone(cfg: CfgNode) -> DictConfig:
    m = cfg.MODEL
    _require(m.BACKBONE.NAME == "build_resnet_fpn_backbone",
             f"MODEL.BACKBONE.NAME {m.BACKBONE.NAME!r} (only build_resnet_fpn_backbone)")
    r = m.RESNETS
    return L(FPN)(
        bottom_up=L(ResNet)(
            stem=L(BasicStem)(in_channels=len(m.PIXEL_MEAN), out_channels=r.STEM_OUT_CHANNELS,
                              norm=r.NORM),
            stages=L(resnet_stages)(
                depth=r.DEPTH, norm=r.NORM, stride_in_1x1=r.STRIDE_IN_1X1,
                num_groups=r.NUM_GROUPS, width_per_group=r.WIDTH_PER_GROUP,
                stem_out_channels=r.STEM_OUT_CHANNELS, res2_out_channels=r.RES2_OUT_CHANNELS,
                res5_dilation=r.RES5_DILATION, deform_on_per_stage=list(r.DEFORM_ON_PER_STAGE),
                deform_modulated=r.DEFORM_MODULATED, deform_num_groups=r.DEFORM_NUM_GROUPS,
            ),
            out_features=list(r.OUT_FEATURES),
            freeze_at=m.BACKBONE.FREEZE_AT,
        ),
        in_features=list(m.FPN.IN_FEATURES),
        out_channels=m.FPN.OUT_CHANNELS,
        norm=m.FPN.NORM,
        top_block=L(LastLevelMaxPool)(),
        fuse_type=m.FPN.FUSE_TYPE,
    )


def _panoptic(cfg: CfgNode) -> bool:
    return cfg.MODEL.META_ARCHITECTURE == "PanopticSOLO"


def _sem_seg_head(cfg: CfgNode) -> DictConfig:
    """PanopticSOLO's stuff branch: Detectron2's SemSegFPNHead on the FPN levels (p<k>: stride
    2^k, MODEL.FPN.OUT_CHANNELS) or SOLOv2's mask features, as ``from_config`` reads it."""
    _require(cfg.MODEL.SEM_SEG_HEAD.NAME == "SemSegFPNHead",
             f"MODEL.SEM_SEG_HEAD.NAME {cfg.MODEL.SEM_SEG_HEAD.NAME!r} (SemSegFPNHead only)")
    shapes = {}
    for f in cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES:
        if f == MASK_FEATURES:
            m = cfg.MODEL.SOLO.MASK_FEAT
            shapes[f] = L(ShapeSpec)(channels=m.OUT_CHANNELS, stride=m.MASK_STRIDE)
        else:
            _require(f[:1] == "p" and f[1:].isdigit(),
                     f"MODEL.SEM_SEG_HEAD.IN_FEATURES {f!r} (FPN levels p<k> or mask_features)")
            shapes[f] = L(ShapeSpec)(channels=cfg.MODEL.FPN.OUT_CHANNELS, stride=2 ** int(f[1:]))
    args = dict(SemSegFPNHead.from_config(cfg, {f: None for f in shapes}))
    args["input_shape"] = shapes
    return L(SemSegFPNHead)(**args)


def _model(cfg: CfgNode) -> DictConfig:
    _require(cfg.MODEL.META_ARCHITECTURE in ("SOLO", "PanopticSOLO"),
             f"MODEL.META_ARCHITECTURE {cfg.MODEL.META_ARCHITECTURE!r} (only SOLO, PanopticSOLO)")
    settings = solo_settings(cfg)
    settings["inference_settings"] = lazy_call_of(settings["inference_settings"])
    names = {v: k for k, v in AMP_DTYPES.items()}
    settings["inference_amp"] = names.get(settings["inference_amp"], "")
    head_cls = SOLO_HEAD_REGISTRY.get(cfg.MODEL.SOLO.HEAD_NAME)
    head_args = head_cls.from_config(cfg, None)
    del head_args["input_shape"]  # SOLO builds the head for its backbone's levels
    head_args["num_classes"] = "${..num_classes}"
    if _panoptic(cfg):
        return L(PanopticSOLO)(backbone=_backbone(cfg), head=L(head_cls)(**head_args),
                               sem_seg_head=_sem_seg_head(cfg), **settings,
                               **panoptic_settings(cfg))
    return L(SOLO)(backbone=_backbone(cfg), head=L(head_cls)(**head_args), **settings)


def _mapper(cfg: CfgNode, is_train: bool) -> DictConfig:
    panoptic = _panoptic(cfg) and is_train
    args = SOLODatasetMapper.from_config(cfg, is_train)
    args["augmentations"] = [lazy_call_of(a) for a in args["augmentations"]]
    _require(not args.get("use_keypoint") and args.get("precomputed_proposal_topk") is None,
             "keypoints or precomputed proposals in the mapper")
    for key in ("use_keypoint", "keypoint_hflip_indices", "precomputed_proposal_topk"):
        args.pop(key, None)
    if panoptic:  # things and stuff of the training data, read when the mapper is made
        args["labels"] = L(PanopticLabels.from_datasets)(names="${...dataset.names}")
        args["ignore_value"] = cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE
        return L(PanopticDatasetMapper)(**args)
    return L(SOLODatasetMapper)(**args)


def _dataloader(cfg: CfgNode) -> DictConfig:
    d = OmegaConf.create()
    d.register_coco_instances = [list(e) for e in cfg.DATASETS.REGISTER_COCO_INSTANCES]
    d.max_bad_files = cfg.DATALOADER.MAX_BAD_FILES
    _require(cfg.DATALOADER.SAMPLER_TRAIN == "TrainingSampler",
             f"DATALOADER.SAMPLER_TRAIN {cfg.DATALOADER.SAMPLER_TRAIN!r} (TrainingSampler only)")
    d.train = L(build_detection_train_loader)(
        dataset=L(get_detection_dataset_dicts)(
            names=list(cfg.DATASETS.TRAIN),
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS),
        mapper=_mapper(cfg, True),
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
    d.test = L(build_detection_test_loader)(
        dataset=L(get_detection_dataset_dicts)(names=list(cfg.DATASETS.TEST), filter_empty=False),
        mapper=_mapper(cfg, False),
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )
    if _panoptic(cfg):
        d.register_coco_panoptic = [list(e) for e in cfg.DATASETS.REGISTER_COCO_PANOPTIC]
        d.evaluator = L(build_panoptic_evaluator)(dataset_name="${..test.dataset.names}")
    else:
        d.evaluator = L(SOLOCOCOEvaluator)(dataset_name="${..test.dataset.names}")
    return d


def _optimizer(cfg: CfgNode) -> DictConfig:
    s = cfg.SOLVER
    name = s.OPTIMIZER.upper()
    _require(name in ("SGD", "ADAMW"), f"SOLVER.OPTIMIZER {s.OPTIMIZER!r}")
    params = L(get_default_optimizer_params)(
        base_lr="${..lr}", weight_decay_norm=s.WEIGHT_DECAY_NORM,
        bias_lr_factor=s.BIAS_LR_FACTOR, weight_decay_bias=s.WEIGHT_DECAY_BIAS,
    )
    if name == "SGD":
        return L(torch.optim.SGD)(params=params, lr=s.BASE_LR, momentum=s.MOMENTUM,
                                  nesterov=s.NESTEROV, weight_decay=s.WEIGHT_DECAY, foreach=True)
    return L(torch.optim.AdamW)(params=params, lr=s.BASE_LR, betas=list(s.ADAMW_BETAS),
                                weight_decay=s.WEIGHT_DECAY, fused=True)


def _lr_multiplier(cfg: CfgNode) -> DictConfig:
    s = cfg.SOLVER
    _require(s.LR_SCHEDULER_NAME == "WarmupMultiStepLR",
             f"SOLVER.LR_SCHEDULER_NAME {s.LR_SCHEDULER_NAME!r} (WarmupMultiStepLR only)")
    steps = [x for x in s.STEPS if x <= s.MAX_ITER]
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[s.GAMMA**k for k in range(len(steps) + 1)], milestones=steps,
            num_updates=s.MAX_ITER),
        warmup_length=min(s.WARMUP_ITERS / s.MAX_ITER, 1.0),
        warmup_factor=s.WARMUP_FACTOR,
        warmup_method=s.WARMUP_METHOD,
        rescale_interval=s.RESCALE_INTERVAL,
    )


def _train(cfg: CfgNode) -> Dict[str, Any]:
    s = cfg.SOLVER
    clip = s.CLIP_GRADIENTS
    _require(not clip.ENABLED or clip.CLIP_TYPE == "full_model",
             f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE {clip.CLIP_TYPE!r} (a LazyConfig's "
             "train.clip_grad clips all gradients together: 'full_model')")
    return dict(
        output_dir=cfg.OUTPUT_DIR,
        init_checkpoint=cfg.MODEL.WEIGHTS,
        max_iter=s.MAX_ITER,
        amp=dict(enabled=s.AMP.ENABLED, precision=s.AMP.PRECISION),
        clip_grad=dict(enabled=bool(clip.ENABLED), max_norm=clip.CLIP_VALUE,
                       norm_type=clip.NORM_TYPE),
        ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
        checkpointer=dict(period=s.CHECKPOINT_PERIOD, max_to_keep=None),
        eval_period=cfg.TEST.EVAL_PERIOD,
        log_period=s.LOG_PERIOD,
        device=cfg.MODEL.DEVICE,
        seed=cfg.SEED,
        cluster={k.lower(): (list(v) if isinstance(v, (list, tuple)) else v)
                 for k, v in cfg.CLUSTER.items()},
    )


def yaml_to_lazy(cfg: CfgNode) -> DictConfig:
    """The LazyConfig (``model``, ``dataloader``, ``optimizer``, ``lr_multiplier``,
    ``train``) that builds and trains what the yaml config ``cfg`` does with SOLOTrainer."""
    return OmegaConf.create({
        "model": _model(cfg),
        "dataloader": _dataloader(cfg),
        "optimizer": _optimizer(cfg),
        "lr_multiplier": _lr_multiplier(cfg),
        "train": _train(cfg),
    }, flags={"allow_objects": True})
