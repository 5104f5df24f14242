"""``LazySOLOTrainer``: SOLOTrainer's training and evaluation for LazyConfigs.

It reads a config as Detectron2's ``tools/lazyconfig_train_net.py`` does (``model``,
``dataloader.{train,test,evaluator}``, ``optimizer``, ``lr_multiplier``, ``train``) and gives
it what :class:`~solo_d2.engine.SOLOTrainer` gives a yaml config:

* the mapper and evaluator the config names (solo_d2's configs: SOLODatasetMapper with
  OpenCV's resize, SOLOCOCOEvaluator of masks and boxes),
* ``train.amp``: autocast on the CPU as on GPUs (``precision`` "auto", "bfloat16",
  "float16"), ``train.clip_grad``: one gradient norm over the whole model (mmdet's),
* multi-process training on the CPU as on GPUs (DistributedDataParallel with ``train.ddp``),
* class counts of every dataset checked against the model's before the first iteration,
* ``dataloader.register_coco_instances``: one's own COCO json files by name,
* atomic checkpoints, a clear stop on a failed save, and a resume from the run's own
  checkpoints only (:class:`~solo_d2.checkpoint.SOLOCheckpointer`), where the training sampler
  continues after the images already seen,
* bad files skipped, counted and limited (``dataloader.max_bad_files``, yaml
  DATALOADER.MAX_BAD_FILES), and left out of evaluation,
* preemption signals (``train.cluster.preempt_signals``, yaml CLUSTER.PREEMPT_SIGNALS): a
  checkpoint, then exit status 75 (docs/CLUSTERS.md),
* metrics written every ``train.log_period`` iterations.

The training and test loaders must be Detectron2's ``build_detection_train_loader`` and
``build_detection_test_loader`` (as in configs/common/data/): their arguments are
instantiated and given the wrappers that skip bad files (:mod:`solo_d2.engine.robust_loaders`).
"""
import copy
import logging
import os
import weakref
from collections import OrderedDict
from typing import Any, Dict, Optional

import torch
from detectron2.config import instantiate
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import TrainerBase, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from detectron2.utils.registry import locate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..data.bad_files import BadFilesHook, SkippedSamples
from ..data.class_checks import check_dataset_classes, check_stuff_classes
from ..launch import AgreedStopHook, create_ddp_model
from ..modeling.precision import resolve_train_amp
from ..solver import clip_full_model_gradients
from .amp import step_trainer
from .configs import (
    build_solo_model,
    cluster_setting,
    dataset_names,
    max_bad_files,
    register_datasets,
)
from .robust_loaders import continue_sampler, inference_loader, train_loader
from .trainer import SOLOTrainer, metric_writers

__all__ = ["LazySOLOTrainer", "model_num_classes", "trainer_class"]

# Detectron2's own name: default_setup writes its messages to <output_dir>/log.txt
logger = logging.getLogger("detectron2")


def _resolved(cfg: DictConfig) -> DictConfig:
    """A copy with every interpolation resolved: parts of it can then be instantiated alone."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.resolve(cfg)
    return cfg


def model_num_classes(model: nn.Module) -> Optional[int]:
    """The class count a model predicts: SOLO's ``num_classes``, Mask R-CNN's
    ``roi_heads.num_classes``; None for a model that says neither."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    for owner in (model, getattr(model, "roi_heads", None)):
        n = getattr(owner, "num_classes", None)
        if isinstance(n, int):
            return n
    return None


def _loader_arguments(call: DictConfig, key: str, builder) -> Dict[str, Any]:
    """The instantiated arguments of ``call`` (the config's ``key``), a LazyCall of
    ``builder``."""
    target = call.get("_target_") if isinstance(call, DictConfig) else None
    if (locate(target) if isinstance(target, str) else target) is not builder:
        raise ValueError(
            f"{key} must call detectron2.data.{builder.__name__} (as configs/common/data/ "
            f"does), got {target if target is not None else call!r}: solo_d2's trainer wraps "
            "its mapper and sampler to skip bad files and to resume")
    return {k: instantiate(v) for k, v in call.items() if k != "_target_"}


def _check_classes(names, model: nn.Module, load: bool) -> None:
    n = model_num_classes(model)
    if n is not None:
        check_dataset_classes(names, n, load=load, key="model.num_classes")
    stuff = getattr(getattr(model, "module", model), "num_sem_seg_classes", None)
    if stuff is not None:  # PanopticSOLO
        check_stuff_classes(names, stuff, load=load, key="model.sem_seg_head.num_classes")


def _preempt_signals(cfg: DictConfig):
    return cluster_setting(cfg, "preempt_signals")[0]


class LazySOLOTrainer(TrainerBase):
    """Detectron2's DefaultTrainer interface for a LazyConfig (see the module docstring):
    ``trainer = LazySOLOTrainer(cfg); trainer.resume_or_load(resume); trainer.train()``."""

    def __init__(self, cfg: DictConfig):
        super().__init__()
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        register_datasets(cfg)
        cfg = _resolved(cfg)
        t = cfg.train
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        _check_classes(dataset_names(cfg, "train"), model, load=False)  # loaded above
        # Test sets are loaded only to evaluate, after training: check their classes now.
        _check_classes(dataset_names(cfg, "test"), model, load=True)
        model = create_ddp_model(model, **t.ddp)
        device_type = torch.device(t.device).type
        amp = t.get("amp", {})
        dtype = resolve_train_amp(amp.get("enabled", False), amp.get("precision", "auto"),
                                  device_type, "train.amp.precision")
        if dtype is not None:
            logger.info(f"Training under {dtype} autocast on {device_type} (train.amp)")
        self._trainer = step_trainer(model, data_loader, optimizer, device_type, dtype)
        self.checkpointer = SOLOCheckpointer(model, t.output_dir, defer_write_errors=True,
                                             trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = t.max_iter
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    # -------------------------------------------------------------- components
    @classmethod
    def build_model(cls, cfg: DictConfig) -> nn.Module:
        """``instantiate(cfg.model)`` on ``train.device``."""
        model = build_solo_model(cfg)
        logger.info(f"Model:\n{model}")
        return model

    @classmethod
    def build_optimizer(cls, cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
        """``cfg.optimizer`` with ``params.model`` set to ``model`` (Detectron2's
        convention), clipping all gradients together when ``train.clip_grad.enabled``."""
        opt_cfg = copy.deepcopy(cfg.optimizer)
        opt_cfg.params.model = model
        optimizer = instantiate(opt_cfg)
        clip = cfg.train.get("clip_grad", {})
        if clip.get("enabled", False):
            optimizer = clip_full_model_gradients(optimizer, clip.max_norm, clip.norm_type)
        return optimizer

    @classmethod
    def build_train_loader(cls, cfg: DictConfig) -> SkippedSamples:
        """``dataloader.train`` with the mapper skipping bad samples, a resumable sampler and
        data workers that ignore the preemption signals
        (:func:`~solo_d2.engine.robust_loaders.train_loader`)."""
        register_datasets(cfg)
        args = _loader_arguments(cfg.dataloader.train, "dataloader.train",
                                 build_detection_train_loader)
        return train_loader(args, max_bad_files(cfg), _preempt_signals(cfg))

    @classmethod
    def build_test_loader(cls, cfg: DictConfig, dataset_name: str):
        """``dataloader.test`` for ``dataset_name``; images that cannot be read are skipped
        (logged; the evaluator leaves them out and reports them)."""
        register_datasets(cfg)
        loader = copy.deepcopy(cfg.dataloader.test)
        loader.dataset.names = dataset_name
        args = _loader_arguments(loader, "dataloader.test", build_detection_test_loader)
        return inference_loader(build_detection_test_loader, args.pop("mapper"),
                           _preempt_signals(cfg), **args)

    @classmethod
    def build_evaluator(cls, cfg: DictConfig, dataset_name: str):
        """``dataloader.evaluator`` for ``dataset_name``, writing under
        ``<train.output_dir>/inference`` unless it says where."""
        evaluator = copy.deepcopy(cfg.dataloader.evaluator)
        evaluator.dataset_name = dataset_name
        if evaluator.get("output_dir") is None:
            evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
        return instantiate(evaluator)

    def build_hooks(self) -> list:
        """Detectron2's hooks for LazyConfigs (iteration timer, lr schedule, periodic
        checkpoints, evaluation, metric writers every ``train.log_period``), the bad-file
        count before the writers, and the agreed stop (preemption, failed checkpoint write)
        last."""
        t = self.cfg.train
        ret = [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(self.cfg.lr_multiplier)),
        ]
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, **t.checkpointer))
        ret.append(hooks.EvalHook(t.eval_period, lambda: self.test(self.cfg, self.model)))
        loader = self._trainer.data_loader
        if isinstance(loader, SkippedSamples):  # counted before the writers write
            ret.append(BadFilesHook(loader, *loader.bad_file_limit))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(
                metric_writers(t.output_dir, self.max_iter, t.log_period), period=t.log_period))
        # last: the state it saves is the state after the iteration
        ret.append(AgreedStopHook(self.checkpointer, _preempt_signals(self.cfg)))
        return ret

    # -------------------------------------------------------------- training
    @property
    def model(self) -> nn.Module:
        return self._trainer.model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._trainer.optimizer

    def resume_or_load(self, resume: bool = True) -> None:
        """Resume from the last complete checkpoint in ``train.output_dir`` (with
        ``resume``), else load ``train.init_checkpoint``."""
        self.checkpointer.resume_or_load(self.cfg.train.init_checkpoint, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # the checkpoint stores the iteration that just finished
            self.start_iter = self.iter + 1
        continue_sampler(self._trainer.data_loader, self.start_iter,
                         self.cfg.dataloader.train.total_batch_size // comm.get_world_size())

    def train(self) -> None:
        super().train(self.start_iter, self.max_iter)

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        return ret

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._trainer.load_state_dict(state_dict["_trainer"])

    # -------------------------------------------------------------- evaluation
    @classmethod
    def test(cls, cfg: DictConfig, model: nn.Module):
        """Evaluate ``model`` on every test dataset (``dataloader.test.dataset.names``):
        {name: results}, or the results alone for one dataset, as DefaultTrainer.test."""
        cfg = _resolved(cfg)
        results = OrderedDict()
        for name in dataset_names(cfg, "test"):
            loader = cls.build_test_loader(cfg, name)
            _check_classes([name], model, load=False)
            results[name] = inference_on_dataset(model, loader, cls.build_evaluator(cfg, name))
            if comm.is_main_process():
                logger.info(f"Evaluation results for {name} in csv format:")
                print_csv_format(results[name])
        if len(results) == 1:
            return list(results.values())[0]
        return results


def trainer_class(cfg) -> type:
    """:class:`~solo_d2.engine.SOLOTrainer` for a yaml config, :class:`LazySOLOTrainer` for a
    LazyConfig: both have Detectron2's DefaultTrainer interface (``Trainer(cfg)``,
    ``resume_or_load``, ``train``, and the class methods ``build_model(cfg)`` and
    ``test(cfg, model)``)."""
    from .configs import is_lazy

    return LazySOLOTrainer if is_lazy(cfg) else SOLOTrainer
