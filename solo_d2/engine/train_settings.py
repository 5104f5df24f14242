"""What :class:`~solo_d2.engine.SOLOTrainer` reads from a config, for both kinds: a yaml
config (Detectron2's keys, as its ``tools/train_net.py`` reads them) or a LazyConfig
(``model``, ``dataloader``, ``optimizer``, ``lr_multiplier``, ``train``, as its
``tools/lazyconfig_train_net.py`` reads them). Each function answers one question for both,
so the trainer has one code path.
"""
import copy
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from detectron2.config import CfgNode, instantiate
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.solver import LRMultiplier, build_lr_scheduler
from detectron2.utils.registry import locate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..data.mapper import SOLODatasetMapper
from ..data.panoptic_mapper import PanopticDatasetMapper
from ..evaluation import SOLOCOCOEvaluator
from ..evaluation.panoptic import build_panoptic_evaluator
from ..layers.precision import resolve_train_amp
from ..solver import build_solo_optimizer, clip_full_model_gradients
from .configs import AnyConfig, cluster_setting, is_lazy

__all__ = [
    "TrainSettings",
    "build_evaluator",
    "build_optimizer",
    "build_scheduler",
    "class_counts",
    "inference_loader_arguments",
    "prepared",
    "train_loader_arguments",
    "train_settings",
]


@dataclass(frozen=True)
class TrainSettings:
    """The scalar settings of a training run, whatever the config's kind."""

    output_dir: str
    weights: str  # MODEL.WEIGHTS / train.init_checkpoint
    max_iter: int
    total_batch_size: int  # images per iteration over all processes
    log_period: int  # SOLVER.LOG_PERIOD / train.log_period
    eval_period: int
    checkpoint_period: int
    max_to_keep: Optional[int]
    device_type: str
    amp_dtype: Optional[torch.dtype]  # None: no autocast
    amp_key: str  # where the config says it, for the log
    ddp: Dict[str, Any]  # DistributedDataParallel's keyword arguments
    preempt_signals: Tuple[str, ...]


def prepared(cfg: AnyConfig, world_size: int) -> AnyConfig:
    """The config the trainer keeps: a yaml config scaled to ``world_size`` as Detectron2's
    DefaultTrainer does (``SOLVER.REFERENCE_WORLD_SIZE``); a LazyConfig copied with every
    interpolation resolved, so that parts of it can be instantiated alone."""
    if not is_lazy(cfg):
        return DefaultTrainer.auto_scale_workers(cfg, world_size)
    cfg = copy.deepcopy(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def train_settings(cfg: AnyConfig) -> TrainSettings:
    """The scalar settings (see :class:`TrainSettings`)."""
    signals = tuple(cluster_setting(cfg, "preempt_signals")[0])
    if not is_lazy(cfg):
        device_type = torch.device(cfg.MODEL.DEVICE).type
        key = "SOLVER.AMP.PRECISION"
        return TrainSettings(
            output_dir=cfg.OUTPUT_DIR, weights=cfg.MODEL.WEIGHTS, max_iter=cfg.SOLVER.MAX_ITER,
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH, log_period=cfg.SOLVER.LOG_PERIOD,
            eval_period=cfg.TEST.EVAL_PERIOD, checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
            max_to_keep=None, device_type=device_type,
            amp_dtype=resolve_train_amp(cfg.SOLVER.AMP.ENABLED, cfg.SOLVER.AMP.PRECISION,
                                        device_type, key),
            amp_key="SOLVER.AMP", ddp=dict(broadcast_buffers=False), preempt_signals=signals)
    t = cfg.train
    device_type = torch.device(t.device).type
    amp = t.get("amp", {})
    return TrainSettings(
        output_dir=t.output_dir, weights=t.init_checkpoint, max_iter=t.max_iter,
        total_batch_size=cfg.dataloader.train.total_batch_size, log_period=t.log_period,
        eval_period=t.eval_period, checkpoint_period=t.checkpointer.period,
        max_to_keep=t.checkpointer.get("max_to_keep"), device_type=device_type,
        amp_dtype=resolve_train_amp(amp.get("enabled", False), amp.get("precision", "auto"),
                                    device_type, "train.amp.precision"),
        amp_key="train.amp", ddp=dict(t.ddp), preempt_signals=signals)


def build_optimizer(cfg: AnyConfig, model: nn.Module) -> torch.optim.Optimizer:
    """yaml: :func:`~solo_d2.solver.build_solo_optimizer` (``SOLVER.OPTIMIZER``, clipping);
    LazyConfig: ``cfg.optimizer`` with ``params.model`` set to ``model`` (Detectron2's
    convention), clipping all gradients together when ``train.clip_grad.enabled``."""
    if not is_lazy(cfg):
        return build_solo_optimizer(cfg, model)
    opt_cfg = copy.deepcopy(cfg.optimizer)
    opt_cfg.params.model = model
    optimizer = instantiate(opt_cfg)
    clip = cfg.train.get("clip_grad", {})
    if clip.get("enabled", False):
        optimizer = clip_full_model_gradients(optimizer, clip.max_norm, clip.norm_type)
    return optimizer


def build_scheduler(cfg: AnyConfig, optimizer: torch.optim.Optimizer):
    """Detectron2's learning-rate scheduler: ``SOLVER.LR_SCHEDULER_NAME`` and its keys, or
    the LazyConfig's ``lr_multiplier`` over ``train.max_iter`` iterations."""
    if not is_lazy(cfg):
        return build_lr_scheduler(cfg, optimizer)
    return LRMultiplier(optimizer, instantiate(cfg.lr_multiplier), cfg.train.max_iter)


def _is_panoptic(cfg: CfgNode) -> bool:
    """Whether a yaml config's model is panoptic: PanopticSOLO (docs/PANOPTIC.md), or
    Detectron2's PanopticFPN (the baseline), which takes the same inputs and outputs."""
    return cfg.MODEL.META_ARCHITECTURE in ("PanopticSOLO", "PanopticFPN")


def _loader_arguments(call: DictConfig, key: str, builder: Callable) -> Dict[str, Any]:
    """The instantiated arguments of ``call`` (the config's ``key``), a LazyCall of
    ``builder``."""
    target = call.get("_target_") if isinstance(call, DictConfig) else None
    if (locate(target) if isinstance(target, str) else target) is not builder:
        raise ValueError(
            f"{key} must call detectron2.data.{builder.__name__} (as configs/common/data/ "
            f"does), got {target if target is not None else call!r}: solo_d2's trainer wraps "
            "its mapper and sampler to skip bad files and to resume")
    return {k: instantiate(v) for k, v in call.items() if k != "_target_"}


def train_loader_arguments(cfg: AnyConfig) -> Dict[str, Any]:
    """The arguments of Detectron2's ``build_detection_train_loader`` (dataset, mapper,
    sampler, batch size, workers), to be wrapped: yaml through the loader's own
    ``from_config`` with the SOLO or panoptic mapper, LazyConfig from ``dataloader.train``."""
    if is_lazy(cfg):
        return _loader_arguments(cfg.dataloader.train, "dataloader.train",
                                 build_detection_train_loader)
    mapper = (PanopticDatasetMapper if _is_panoptic(cfg) else SOLODatasetMapper)(cfg, True)
    return build_detection_train_loader.from_config(cfg, mapper=mapper)


def inference_loader_arguments(cfg: AnyConfig, dataset_name: str) -> Dict[str, Any]:
    """Keyword arguments of Detectron2's ``build_detection_test_loader`` for one dataset,
    ``mapper`` among them."""
    if not is_lazy(cfg):
        return dict(mapper=SOLODatasetMapper(cfg, False), cfg=cfg, dataset_name=dataset_name)
    loader = copy.deepcopy(cfg.dataloader.test)
    loader.dataset.names = dataset_name
    return _loader_arguments(loader, "dataloader.test", build_detection_test_loader)


def build_evaluator(cfg: AnyConfig, dataset_name: str, output_folder: Optional[str] = None):
    """yaml: COCO mask and box AP, or for a panoptic model what Detectron2's train_net builds
    for Panoptic FPN (stuff mIoU, mask AP, PQ); LazyConfig: ``dataloader.evaluator``. Both
    write under ``<output dir>/inference`` unless told where."""
    if not is_lazy(cfg):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        if _is_panoptic(cfg):
            return build_panoptic_evaluator(dataset_name, output_folder)
        return SOLOCOCOEvaluator(dataset_name, output_dir=output_folder)
    evaluator = copy.deepcopy(cfg.dataloader.evaluator)
    evaluator.dataset_name = dataset_name
    if output_folder is not None:
        evaluator.output_dir = output_folder
    elif evaluator.get("output_dir") is None:
        evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
    return instantiate(evaluator)


def class_counts(cfg: AnyConfig) -> List[Tuple[str, int, str]]:
    """What the datasets' classes are checked against: ``[(kind, count, key)]`` with kind
    "things" (SOLO's or Mask R-CNN's classes) and, for a panoptic model, "stuff" (stuff + 1,
    as Detectron2 counts them); ``key`` names the setting in messages."""
    if not is_lazy(cfg):
        out = [("things", cfg.MODEL.SOLO.NUM_CLASSES, "MODEL.SOLO.NUM_CLASSES")]
        if _is_panoptic(cfg):
            out.append(("stuff", cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
                        "MODEL.SEM_SEG_HEAD.NUM_CLASSES"))
        return out
    out = []
    for kind, key in (("things", "model.num_classes"), ("things", "model.roi_heads.num_classes"),
                      ("stuff", "model.sem_seg_head.num_classes")):
        count = OmegaConf.select(cfg, key, default=None)
        if isinstance(count, int) and not any(k == kind for k, _, _ in out):
            out.append((kind, count, key))
    return out
