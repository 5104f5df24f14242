"""``SOLOTrainer``: Detectron2's DefaultTrainer with what SOLO training needs.

* the SOLO mapper (``INPUT.RESIZE_BACKEND``, 16-bit images, errors naming the image),
* ``SOLVER.OPTIMIZER`` (SGD / AdamW) and ``CLIP_TYPE "full_model"``,
* COCO evaluation of masks and their boxes (:class:`SOLOCOCOEvaluator`),
* ``SOLVER.AMP`` on the CPU as on GPUs (bf16 autocast; ``SOLVER.AMP.PRECISION``),
* multi-process training on the CPU as on GPUs (DistributedDataParallel without device ids
  for a CPU model),
* class counts of every dataset checked against ``MODEL.SOLO.NUM_CLASSES`` before the first
  iteration,
* atomic checkpoints and a safe resume (:class:`~solo_d2.checkpoint.SOLOCheckpointer`),
* metrics written every ``SOLVER.LOG_PERIOD`` iterations.
"""
import logging
import os
import weakref

from detectron2.config import CfgNode, get_cfg
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..config import add_solo_config
from ..data.cfg_datasets import register_cfg_datasets
from ..data.class_checks import check_dataset_classes
from ..data.mapper import SOLODatasetMapper
from ..solver import build_solo_optimizer
from .amp import build_step_trainer
from .evaluation import SOLOCOCOEvaluator
from .launch import create_ddp_model

__all__ = ["SOLOTrainer", "get_solo_cfg", "metric_writers"]


def get_solo_cfg(config_file: str, opts=()) -> CfgNode:
    """Detectron2's config with the SOLO keys, ``config_file`` and ``opts`` merged, frozen;
    the datasets it declares (``DATASETS.REGISTER_COCO_INSTANCES``) are registered."""
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    register_cfg_datasets(cfg)
    return cfg


def metric_writers(output_dir: str, max_iter: int, window: int) -> list:
    """Detectron2's default writers (console, metrics.json, TensorBoard); smoothed values are
    medians over the last ``window`` iterations (Detectron2: 20), so with 1 every value is
    written."""
    PathManager.mkdirs(output_dir)
    return [
        CommonMetricPrinter(max_iter, window_size=window),
        JSONWriter(os.path.join(output_dir, "metrics.json"), window_size=window),
        TensorboardXWriter(output_dir, window_size=window),
    ]


class SOLOTrainer(DefaultTrainer):
    """DefaultTrainer for SOLO-family models (see the module docstring). Used as
    Detectron2's: ``trainer = SOLOTrainer(cfg); trainer.resume_or_load(resume); trainer.train()``.
    """

    #: read by solo_d2.config_checks.check_trainer_honours_config: this trainer honours
    #: SOLVER.OPTIMIZER, CLIP_TYPE "full_model", INPUT.RESIZE_BACKEND and the other SOLO keys
    honours_solo_settings = True

    def __init__(self, cfg: CfgNode):
        # DefaultTrainer.__init__, with a DDP wrapper that accepts CPU models and our
        # checkpointer; the order of construction is Detectron2's.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        # Test sets are loaded only to evaluate, after training: check their classes now.
        check_dataset_classes(cfg.DATASETS.TEST, cfg.MODEL.SOLO.NUM_CLASSES, load=True)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SOLOCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_hooks(self):
        """Detectron2's hooks, the metric writers running every ``SOLVER.LOG_PERIOD``."""
        ret = super().build_hooks()
        for hook in ret:
            if isinstance(hook, hooks.PeriodicWriter):
                hook._period = self.cfg.SOLVER.LOG_PERIOD
        return ret

    def build_writers(self):
        """:func:`metric_writers` every ``SOLVER.LOG_PERIOD`` iterations."""
        return metric_writers(self.cfg.OUTPUT_DIR, self.max_iter, self.cfg.SOLVER.LOG_PERIOD)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        return SOLOCOCOEvaluator(dataset_name, output_dir=output_folder)

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model):
        return build_solo_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        register_cfg_datasets(cfg)
        loader = build_detection_train_loader(cfg, mapper=SOLODatasetMapper(cfg, True))
        # Loading the datasets (above) gave every registered COCO json its class names.
        check_dataset_classes(cfg.DATASETS.TRAIN, cfg.MODEL.SOLO.NUM_CLASSES)
        return loader

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        register_cfg_datasets(cfg)
        loader = build_detection_test_loader(
            cfg, dataset_name, mapper=SOLODatasetMapper(cfg, False)
        )
        check_dataset_classes([dataset_name], cfg.MODEL.SOLO.NUM_CLASSES)
        return loader
