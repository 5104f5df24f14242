"""``SOLOTrainer``: Detectron2's DefaultTrainer with what SOLO training needs.

* the SOLO mapper (``INPUT.RESIZE_BACKEND``, 16-bit images, errors naming the image),
* ``SOLVER.OPTIMIZER`` (SGD / AdamW) and ``CLIP_TYPE "full_model"``,
* COCO evaluation of masks and their boxes (:class:`SOLOCOCOEvaluator`); for PanopticSOLO
  stuff mIoU, mask AP and PQ, and its mapper (``sem_seg`` targets from panoptic PNGs),
* ``SOLVER.AMP`` on the CPU as on GPUs (bf16 autocast; ``SOLVER.AMP.PRECISION``),
* multi-process training on the CPU as on GPUs (DistributedDataParallel without device ids
  for a CPU model),
* class counts of every dataset checked against ``MODEL.SOLO.NUM_CLASSES`` (and
  ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` for PanopticSOLO) before the first iteration,
* atomic checkpoints, a clear stop on a failed save, and a resume from the run's own
  checkpoints only (:class:`~solo_d2.checkpoint.SOLOCheckpointer`), where the training sampler
  continues after the images already seen (:class:`~solo_d2.data.resumable_sampler.ResumableSampler`),
* bad files skipped, counted and limited (``DATALOADER.MAX_BAD_FILES``,
  :class:`~solo_d2.data.bad_files.BadFilesHook`), and left out of evaluation,
* preemption signals (``CLUSTER.PREEMPT_SIGNALS``): a checkpoint, then exit status 75, with
  data workers that ignore them; a checkpoint rank 0 could not write stops every process
  (:mod:`solo_d2.launch.agreed_stop`),
* metrics written every ``SOLVER.LOG_PERIOD`` iterations.
"""
import logging
import os
import weakref

from detectron2.config import CfgNode
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..data.bad_files import BadFilesHook, DropSkippedSamples, SkippedSamples
from ..data.cfg_datasets import register_cfg_datasets
from ..data.class_checks import check_dataset_classes, check_stuff_classes
from ..data.mapper import SOLODatasetMapper
from ..data.panoptic_mapper import PanopticDatasetMapper
from ..evaluation import SOLOCOCOEvaluator
from ..evaluation.panoptic import build_panoptic_evaluator
from ..launch import AgreedStopHook, create_ddp_model
from ..solver import build_solo_optimizer
from .amp import build_step_trainer
from .configs import max_bad_files
from .robust_loaders import continue_sampler, inference_loader, train_loader

__all__ = ["SOLOTrainer", "metric_writers"]


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


def _is_panoptic(cfg: CfgNode) -> bool:
    """Whether the config's model is panoptic: PanopticSOLO (docs/PANOPTIC.md), or
    Detectron2's PanopticFPN (the baseline), which gives the same inputs and outputs."""
    return cfg.MODEL.META_ARCHITECTURE in ("PanopticSOLO", "PanopticFPN")


class SOLOTrainer(DefaultTrainer):
    """DefaultTrainer for SOLO-family models (see the module docstring). Used as
    Detectron2's: ``trainer = SOLOTrainer(cfg); trainer.resume_or_load(resume); trainer.train()``.
    """

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
        if _is_panoptic(cfg):
            check_stuff_classes(cfg.DATASETS.TEST, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, load=True)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = build_step_trainer(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SOLOCheckpointer(model, cfg.OUTPUT_DIR, defer_write_errors=True,
                                             trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def resume_or_load(self, resume: bool = True) -> None:
        """Detectron2's; a resumed run's training sampler skips the images each process has
        already seen (``start_iter`` x images per process)."""
        super().resume_or_load(resume=resume)
        continue_sampler(self._trainer.data_loader, self.start_iter,
                         self.cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size())

    def build_hooks(self):
        """Detectron2's hooks, the metric writers running every ``SOLVER.LOG_PERIOD``, the
        bad-file count before the writers, and the agreed stop (preemption, failed
        checkpoint write) last."""
        ret = super().build_hooks()
        writer_at = len(ret)
        for i, hook in enumerate(ret):
            if isinstance(hook, hooks.PeriodicWriter):
                # Detectron2 writes every 20 iterations; a new hook would open the writers
                # twice (tests/engine/test_detectron2_names.py guards this private name)
                hook._period = self.cfg.SOLVER.LOG_PERIOD
                writer_at = min(writer_at, i)
        loader = self._trainer.data_loader
        if isinstance(loader, SkippedSamples):
            ret.insert(writer_at, BadFilesHook(loader, *loader.bad_file_limit))
        ret.append(AgreedStopHook(self.checkpointer, self.cfg.CLUSTER.PREEMPT_SIGNALS))
        return ret

    def build_writers(self):
        """:func:`metric_writers` every ``SOLVER.LOG_PERIOD`` iterations."""
        return metric_writers(self.cfg.OUTPUT_DIR, self.max_iter, self.cfg.SOLVER.LOG_PERIOD)

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder=None):
        """COCO mask and box AP; for a PanopticSOLO model, what Detectron2's train_net
        builds for Panoptic FPN (stuff mIoU, mask AP, PQ: :mod:`.panoptic_evaluation`)."""
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
        if _is_panoptic(cfg):
            return build_panoptic_evaluator(dataset_name, output_folder)
        return SOLOCOCOEvaluator(dataset_name, output_dir=output_folder)

    @classmethod
    def build_optimizer(cls, cfg: CfgNode, model):
        return build_solo_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg: CfgNode) -> SkippedSamples:
        """Detectron2's training loader (its datasets, sampler and batching from ``cfg``) with
        the SOLO mapper skipping bad samples, a resumable sampler, and the skip records taken
        off the samples (:func:`~solo_d2.engine.robust_loaders.train_loader`)."""
        register_cfg_datasets(cfg)
        # Detectron2's own choice of dataset and sampler from cfg (the from_config of its
        # @configurable loader), to wrap them
        mapper = (PanopticDatasetMapper if _is_panoptic(cfg) else SOLODatasetMapper)(cfg, True)
        args = build_detection_train_loader.from_config(cfg, mapper=mapper)
        loader = train_loader(args, max_bad_files(cfg), cfg.CLUSTER.PREEMPT_SIGNALS)
        # Loading the datasets (above) gave every registered COCO json its class names.
        check_dataset_classes(cfg.DATASETS.TRAIN, cfg.MODEL.SOLO.NUM_CLASSES)
        if _is_panoptic(cfg):
            check_stuff_classes(cfg.DATASETS.TRAIN, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES)
        return loader

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str) -> DropSkippedSamples:
        """Detectron2's test loader with the SOLO mapper; images that cannot be read are
        skipped (logged; the evaluator leaves them out and reports them)."""
        register_cfg_datasets(cfg)
        loader = inference_loader(build_detection_test_loader, SOLODatasetMapper(cfg, False),
                                  cfg.CLUSTER.PREEMPT_SIGNALS, cfg=cfg,
                                  dataset_name=dataset_name)
        check_dataset_classes([dataset_name], cfg.MODEL.SOLO.NUM_CLASSES)
        return loader
