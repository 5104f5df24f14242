"""``SOLOTrainer``: Detectron2's DefaultTrainer with what SOLO training needs, for a yaml
config and a LazyConfig alike (what differs between the two is read in
:mod:`solo_d2.engine.train_settings`; ``LazySOLOTrainer`` is the same class).

* the SOLO mapper (``INPUT.RESIZE_BACKEND``, 16-bit images, errors naming the image), or the
  LazyConfig's ``dataloader.train`` / ``dataloader.test`` (Detectron2's loaders, wrapped),
* ``SOLVER.OPTIMIZER`` (SGD / AdamW) and ``CLIP_TYPE "full_model"``, or the LazyConfig's
  ``optimizer`` and ``train.clip_grad`` (one gradient norm over the whole model, mmdet's),
* COCO evaluation of masks and their boxes (:class:`~solo_d2.evaluation.SOLOCOCOEvaluator`);
  for PanopticSOLO stuff mIoU, mask AP and PQ, and its mapper (``sem_seg`` targets from
  panoptic PNGs); a LazyConfig's ``dataloader.evaluator``,
* ``SOLVER.AMP`` / ``train.amp`` on the CPU as on GPUs (bf16 autocast; precision "auto",
  "bfloat16", "float16"),
* multi-process training on the CPU as on GPUs (DistributedDataParallel without device ids
  for a CPU model; ``train.ddp``),
* class counts of every dataset checked against the model's before the first iteration,
* atomic checkpoints, a clear stop on a failed save, and a resume from the run's own
  checkpoints only (:class:`~solo_d2.checkpoint.SOLOCheckpointer`), where the training sampler
  continues after the images already seen (:class:`~solo_d2.data.resumable_sampler.ResumableSampler`),
* bad files skipped, counted and limited (``DATALOADER.MAX_BAD_FILES`` /
  ``dataloader.max_bad_files``, :class:`~solo_d2.data.bad_files.BadFilesHook`), and left out
  of evaluation,
* preemption signals (``CLUSTER.PREEMPT_SIGNALS`` / ``train.cluster.preempt_signals``): a
  checkpoint, then exit status 75, with data workers that ignore them; a checkpoint rank 0
  could not write stops every process (:mod:`solo_d2.launch.agreed_stop`),
* metrics written every ``SOLVER.LOG_PERIOD`` / ``train.log_period`` iterations.
"""
import logging
import os
import weakref
from collections import OrderedDict

from detectron2.data import build_detection_test_loader
from detectron2.engine import DefaultTrainer, TrainerBase, hooks
from detectron2.evaluation import (
    DatasetEvaluator,
    inference_on_dataset,
    print_csv_format,
    verify_results,
)
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import setup_logger
from fvcore.nn.precise_bn import get_bn_modules

from ..checkpoint.checkpointer import SOLOCheckpointer
from ..data.bad_files import BadFilesHook, DropSkippedSamples, SkippedSamples
from ..data.class_checks import check_dataset_classes, check_stuff_classes
from ..launch import AgreedStopHook, create_ddp_model
from ..utils.comm import StepVote
from . import train_settings as ts
from .amp import step_trainer
from .configs import (
    AnyConfig,
    build_solo_model,
    dataset_names,
    is_lazy,
    max_bad_files,
    register_datasets,
)
from .robust_loaders import continue_sampler, inference_loader, train_loader

__all__ = ["LazySOLOTrainer", "SOLOTrainer", "metric_writers", "trainer_class"]

# Detectron2's own name: default_setup writes its messages to <output_dir>/log.txt
logger = logging.getLogger("detectron2")


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


def _check_classes(cfg: AnyConfig, names, load: bool) -> None:
    """The datasets ``names`` against the config's class counts (:func:`ts.class_counts`);
    ``load``: the datasets were not loaded yet (their class names come with loading)."""
    for kind, count, key in ts.class_counts(cfg):
        check = check_dataset_classes if kind == "things" else check_stuff_classes
        check(names, count, load=load, key=key)


class SOLOTrainer(DefaultTrainer):
    """DefaultTrainer for SOLO-family models and either kind of config (see the module
    docstring). Used as Detectron2's: ``trainer = SOLOTrainer(cfg);
    trainer.resume_or_load(resume); trainer.train()``."""

    def __init__(self, cfg: AnyConfig):
        # DefaultTrainer.__init__'s order of construction, with a DDP wrapper that accepts
        # CPU models, autocast on the CPU, and our checkpointer
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        register_datasets(cfg)
        cfg = ts.prepared(cfg, comm.get_world_size())
        self.settings = s = ts.train_settings(cfg)
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)  # checks the training sets' classes
        # Test sets are loaded only to evaluate, after training: check their classes now.
        _check_classes(cfg, dataset_names(cfg, "test"), load=True)
        model = create_ddp_model(model, **s.ddp)
        if s.amp_dtype is not None:
            logger.info(f"Training under {s.amp_dtype} autocast on {s.device_type} ({s.amp_key})")
        self._trainer = step_trainer(model, data_loader, optimizer, s.device_type, s.amp_dtype)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SOLOCheckpointer(model, s.output_dir, defer_write_errors=True,
                                             trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = s.max_iter
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    # -------------------------------------------------------------- components
    @classmethod
    def build_model(cls, cfg: AnyConfig):
        """Detectron2's ``build_model`` / ``instantiate(cfg.model)``, on the config's device."""
        model = build_solo_model(cfg)
        logger.info(f"Model:\n{model}")
        return model

    @classmethod
    def build_optimizer(cls, cfg: AnyConfig, model):
        return ts.build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg: AnyConfig, optimizer):
        return ts.build_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg: AnyConfig) -> SkippedSamples:
        """Detectron2's training loader (its datasets, sampler and batching from ``cfg``) with
        the mapper skipping bad samples, a resumable sampler, and the skip records taken off
        the samples (:func:`~solo_d2.engine.robust_loaders.train_loader`)."""
        register_datasets(cfg)
        loader = train_loader(ts.train_loader_arguments(cfg), max_bad_files(cfg),
                              ts.train_settings(cfg).preempt_signals)
        # Loading the datasets (above) gave every registered COCO json its class names.
        _check_classes(cfg, dataset_names(cfg, "train"), load=False)
        return loader

    @classmethod
    def build_test_loader(cls, cfg: AnyConfig, dataset_name: str) -> DropSkippedSamples:
        """Detectron2's test loader; images that cannot be read are skipped (logged; the
        evaluator leaves them out and reports them)."""
        register_datasets(cfg)
        args = ts.inference_loader_arguments(cfg, dataset_name)
        loader = inference_loader(build_detection_test_loader, args.pop("mapper"),
                                  ts.train_settings(cfg).preempt_signals, **args)
        _check_classes(cfg, [dataset_name], load=False)
        return loader

    @classmethod
    def build_evaluator(cls, cfg: AnyConfig, dataset_name: str, output_folder=None):
        return ts.build_evaluator(cfg, dataset_name, output_folder)

    def build_writers(self) -> list:
        """:func:`metric_writers` every ``SOLVER.LOG_PERIOD`` / ``train.log_period``."""
        return metric_writers(self.settings.output_dir, self.max_iter, self.settings.log_period)

    def build_hooks(self) -> list:
        """Detectron2's hooks (iteration timer, lr schedule, precise BN where a yaml config
        asks, periodic checkpoints, evaluation, metric writers) with the writers every log
        period, the bad-file count before them, and the agreed stop (preemption, failed
        checkpoint write) last."""
        s = self.settings
        ret = [hooks.IterationTimer(), hooks.LRScheduler()]
        if not is_lazy(self.cfg) and self.cfg.TEST.PRECISE_BN.ENABLED \
                and get_bn_modules(self.model):
            cfg = self.cfg.clone()
            cfg.defrost()
            cfg.DATALOADER.NUM_WORKERS = 0  # as Detectron2: save memory and time
            ret.append(hooks.PreciseBN(cfg.TEST.EVAL_PERIOD, self.model,
                                       self.build_train_loader(cfg), cfg.TEST.PRECISE_BN.NUM_ITER))
        if comm.is_main_process():
            ret.append(hooks.PeriodicCheckpointer(self.checkpointer, s.checkpoint_period,
                                                  max_to_keep=s.max_to_keep))

        def evaluate_and_keep_results():
            self._last_eval_results = self.test(self.cfg, self.model)
            return self._last_eval_results

        ret.append(hooks.EvalHook(s.eval_period, evaluate_and_keep_results))
        vote = StepVote()  # one all-reduce per step for the bad files and the agreed stop
        loader = self._trainer.data_loader
        if isinstance(loader, SkippedSamples):  # counted before the writers write
            ret.append(BadFilesHook(loader, *loader.bad_file_limit, vote=vote))
        if comm.is_main_process():
            ret.append(hooks.PeriodicWriter(self.build_writers(), period=s.log_period))
        # last: the state it saves is the state after the iteration
        ret.append(AgreedStopHook(self.checkpointer, s.preempt_signals, vote=vote))
        return ret

    # -------------------------------------------------------------- training
    def resume_or_load(self, resume: bool = True) -> None:
        """Resume from the last complete checkpoint in the output folder (with ``resume``),
        else load the config's weights; the training sampler skips the images each process
        has already seen (``start_iter`` x images per process)."""
        self.checkpointer.resume_or_load(self.settings.weights, resume=resume)
        if resume and self.checkpointer.has_checkpoint():
            # the checkpoint stores the iteration that just finished
            self.start_iter = self.iter + 1
        continue_sampler(self._trainer.data_loader, self.start_iter,
                         self.settings.total_batch_size // comm.get_world_size())

    def train(self):
        """Train from ``start_iter`` to ``max_iter``; a yaml config's
        ``TEST.EXPECTED_RESULTS`` are verified as Detectron2 does."""
        TrainerBase.train(self, self.start_iter, self.max_iter)
        if not is_lazy(self.cfg) and len(self.cfg.TEST.EXPECTED_RESULTS) \
                and comm.is_main_process():
            verify_results(self.cfg, self._last_eval_results)
            return self._last_eval_results
        return None

    # -------------------------------------------------------------- evaluation
    @classmethod
    def test(cls, cfg: AnyConfig, model, evaluators=None):
        """Evaluate ``model`` on every test dataset (``DATASETS.TEST`` /
        ``dataloader.test.dataset.names``): {name: results}, or the results alone for one
        dataset, as DefaultTrainer.test; ``evaluators``, when given, one per dataset."""
        cfg = ts.prepared(cfg, comm.get_world_size()) if is_lazy(cfg) else cfg
        names = dataset_names(cfg, "test")
        if isinstance(evaluators, DatasetEvaluator):
            evaluators = [evaluators]
        if evaluators is not None and len(evaluators) != len(names):
            raise ValueError(f"{len(evaluators)} evaluators for {len(names)} test datasets")
        results = OrderedDict()
        for i, name in enumerate(names):
            loader = cls.build_test_loader(cfg, name)  # checks the dataset's classes
            evaluator = evaluators[i] if evaluators is not None \
                else cls.build_evaluator(cfg, name)
            results[name] = inference_on_dataset(model, loader, evaluator)
            if comm.is_main_process():
                logger.info(f"Evaluation results for {name} in csv format:")
                print_csv_format(results[name])
        if len(results) == 1:
            return list(results.values())[0]
        return results


#: the LazyConfig trainer of earlier versions: the same class
LazySOLOTrainer = SOLOTrainer


def trainer_class(cfg: AnyConfig) -> type:
    """The trainer of either kind of config: :class:`SOLOTrainer`."""
    return SOLOTrainer
