"""The data loaders of :class:`~solo_d2.engine.SOLOTrainer`, made for long runs: bad files
skipped and counted (:mod:`solo_d2.data.bad_files`), a training sampler that a resumed run continues
(:class:`~solo_d2.data.resumable_sampler.ResumableSampler`), and data workers that ignore the
preemption signals the training loop catches. The trainer reads either kind of config into
the arguments of Detectron2's ``build_detection_{train,test}_loader``; what is done to them is
here, once."""
import logging
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from detectron2.data import build_detection_train_loader
from detectron2.data.samplers import TrainingSampler
from torch.utils.data import IterableDataset

from ..data.bad_files import (
    DropSkippedSamples,
    MarkBadSamples,
    SkipBadSamples,
    SkippedSamples,
    bad_file_limit,
    describe_limit,
)
from ..data.resumable_sampler import ResumableSampler
from ..launch.preemption_signals import spare_workers

__all__ = ["train_loader", "inference_loader", "continue_sampler"]

logger = logging.getLogger(__name__)


def train_loader(loader_args: Dict[str, Any], max_bad_files: Tuple[float, str],
                 preempt_signals: Sequence[str]) -> SkippedSamples:
    """Detectron2's ``build_detection_train_loader(**loader_args)`` with the mapper skipping
    bad samples up to ``max_bad_files`` (``(setting, config key)``), the sampler (Detectron2's
    default ``TrainingSampler`` when none is given) resumable, workers that ignore
    ``preempt_signals``, and the skip records taken off the samples. The loader carries
    ``resumable_sampler`` and ``bad_file_limit`` (``(limit, text)``) for the trainer's hooks."""
    args = dict(loader_args)
    dataset = args["dataset"]
    if args.get("mapper") is None:
        raise ValueError("the training loader has no mapper: solo_d2's trainers need one "
                         "(SOLODatasetMapper) to skip the samples it cannot map")
    size = len(dataset)
    setting, key = max_bad_files
    limit = bad_file_limit(setting, size, key)
    limit_text = describe_limit(setting, limit, size, key)
    args["mapper"] = SkipBadSamples(args["mapper"], limit, limit_text)
    sampler = args.get("sampler")
    if sampler is None and not isinstance(dataset, IterableDataset):
        sampler = TrainingSampler(size)  # build_detection_train_loader's own default
    if sampler is not None:
        sampler = args["sampler"] = ResumableSampler(sampler)
    loader = SkippedSamples(spare_workers(build_detection_train_loader(**args),
                                          preempt_signals))
    loader.resumable_sampler = sampler
    loader.bad_file_limit = (limit, limit_text)
    return loader


def inference_loader(build: Callable[..., Any], mapper: Callable[[dict], Any],
                preempt_signals: Sequence[str], **loader_args: Any) -> DropSkippedSamples:
    """``build(mapper=..., **loader_args)`` (Detectron2's ``build_detection_test_loader``)
    with images that cannot be read skipped: logged, and left out by the evaluator, which
    reports them (:class:`~solo_d2.engine.SOLOCOCOEvaluator`)."""
    loader = build(mapper=MarkBadSamples(mapper), **loader_args)
    return DropSkippedSamples(spare_workers(loader, preempt_signals))


def continue_sampler(loader: Any, start_iter: int, images_per_process: int) -> None:
    """Make a resumed run's training sampler skip the images each process has already been
    given (``start_iter`` x ``images_per_process``)."""
    sampler: Optional[ResumableSampler] = getattr(loader, "resumable_sampler", None)
    if sampler is None or start_iter <= 0:
        return
    sampler.skip = start_iter * images_per_process
    logger.info(f"Resuming at iteration {start_iter}: the training sampler of each process "
                f"skips the {sampler.skip} images it has already given")
