"""Bad files in a long run: an image that cannot be read, or an annotation that cannot become a
mask, is skipped and reported instead of ending the run.

Training: :class:`SkipBadSamples` wraps the mapper. A bad sample makes it return ``None``,
so that Detectron2's ``MapDataset`` maps another image in its place, and the file and reason
ride along with the next good sample of the same process under :data:`SKIPPED_KEY` (DataLoader
workers are separate processes: the sample is the one thing that reaches the trainer).
:class:`SkippedSamples` wraps the loader, takes the records off the samples before the model
sees them and keeps them for the trainer's hook, :class:`BadFilesHook`: after every iteration
it sums the records of all processes (one all-reduce of a count; the names are gathered only
when there are some), logs each file once (rank 0), writes the counts to the metrics
(``[metric]bad_files``, ``[metric]skipped_samples``) and past ``DATALOADER.MAX_BAD_FILES``
stops every process together with the list (exit status 65). The list and counts are part of
the checkpoint, so a resumed run keeps counting towards the same limit.

Evaluation: :class:`MarkBadSamples` maps a bad image to a marker (not ``None``: MapDataset
would evaluate another image twice in its place), :class:`DropSkippedSamples` drops markers
from the test loader, and the evaluator leaves the images it never saw out of COCOeval
(:class:`~solo_d2.evaluation.SOLOCOCOEvaluator`).
"""
import logging
import math
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..utils.exit_status import EXIT_BAD_FILES, RunStopped
from ..utils.comm import StepVote, all_gather_objects
from .image_io import ImageReadError

__all__ = [
    "BadFilesHook",
    "BadSampleError",
    "DropSkippedSamples",
    "MarkBadSamples",
    "SKIPPED_KEY",
    "SkipBadSamples",
    "SkippedSamples",
    "TooManyBadFilesError",
    "bad_file_limit",
    "describe_limit",
]

logger = logging.getLogger(__name__)

#: key of the skip records ``[(file_name, reason), ...]`` on a mapped sample
SKIPPED_KEY = "solo_d2_skipped"

Record = Tuple[str, str]


class BadSampleError(ValueError):
    """A dataset record that cannot become a training sample (an annotation that cannot become
    a mask, an image of another size than its record says); the message names the file."""


class TooManyBadFilesError(RunStopped):
    """More bad files than ``DATALOADER.MAX_BAD_FILES`` allows; the message lists them.

    ``agreed`` is True when every process of the run raises it together (the trainer's hook),
    False when one process found the limit passed on its own (its DataLoader)."""

    exit_status = EXIT_BAD_FILES

    def __init__(self, message: str, files: Optional[Dict[str, str]] = None,
                 agreed: bool = False):
        super().__init__(message)
        self.files = dict(files or {})
        self.agreed = agreed


def bad_file_limit(setting: float, dataset_size: int,
                   key: str = "DATALOADER.MAX_BAD_FILES") -> Optional[int]:
    """How many distinct bad files a run tolerates, from ``setting`` (the config's ``key``:
    DATALOADER.MAX_BAD_FILES, a LazyConfig's dataloader.max_bad_files): a whole number >= 1
    is a count, a value in (0, 1) a fraction of the training images (rounded up), 0 tolerates
    none (the first bad file stops the run) and a negative value sets no limit (``None``)."""
    if not math.isfinite(setting):
        raise ValueError(f"{key}={setting!r}: expected a finite number")
    if setting < 0:
        return None
    if setting >= 1:
        if setting != int(setting):
            raise ValueError(f"{key}={setting!r}: a count (>= 1) must be a whole number; a "
                             "fraction of the dataset is below 1")
        return int(setting)
    return math.ceil(setting * dataset_size)


def describe_limit(setting: float, limit: Optional[int], dataset_size: int,
                   key: str = "DATALOADER.MAX_BAD_FILES") -> str:
    """The limit as messages state it, starting with ``key=setting``."""
    if limit is None:
        return "no limit"
    if 0 < setting < 1:
        return f"{key}={setting:g}: at most {limit} of {dataset_size} training images"
    return f"{key}={setting:g}: at most {limit}"


def too_many_message(files: Dict[str, str], limit_text: str) -> str:
    listed = "\n".join(f"  {name}: {reason}" for name, reason in files.items())
    key = limit_text.split("=", 1)[0]  # describe_limit's text starts with the key
    return (f"{len(files)} files could not become training samples, more than {limit_text}. "
            "Fix or remove them (tools/check_dataset.py checks a whole dataset before "
            f"training), or raise {key}. The files:\n{listed}")


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text


class SkipBadSamples:
    """A training mapper that returns ``None`` for a bad sample (see the module docstring).

    Args:
        mapper: the dataset mapper (e.g. :class:`~solo_d2.data.SOLODatasetMapper`).
        limit: distinct bad files this process may meet before it stops on its own (the
            whole run's limit: one process alone past it means the run is past it too; it
            matters when nearly every file is bad and no good sample carries the records).
        limit_text: the limit as the error message states it.
    """

    errors = (ImageReadError, BadSampleError)

    def __init__(self, mapper: Callable[[dict], Any], limit: Optional[int] = None,
                 limit_text: str = "the limit"):
        self.mapper = mapper
        self.limit = limit
        self.limit_text = limit_text
        self._pending: List[Record] = []
        self._bad: Dict[str, str] = {}

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        try:
            sample = self.mapper(dataset_dict)
        except self.errors as e:
            name = str(dataset_dict.get("file_name", "?"))
            self._pending.append((name, _reason(e)))
            self._bad.setdefault(name, _reason(e))
            if self.limit is not None and len(self._bad) > self.limit:
                raise TooManyBadFilesError(too_many_message(self._bad, self.limit_text),
                                           self._bad, agreed=False) from None
            return None
        if sample is not None and self._pending:
            sample[SKIPPED_KEY] = self._pending
            self._pending = []
        return sample


class SkippedSamples:
    """The training loader, with the skip records taken off every sample and kept until
    :meth:`take` (same batches otherwise; ``len`` is the loader's)."""

    def __init__(self, loader: Iterable[List[dict]]):
        self.loader = loader
        self._records: List[Record] = []

    def __iter__(self) -> Iterator[List[dict]]:
        for batch in self.loader:
            for sample in batch:
                self._records.extend(sample.pop(SKIPPED_KEY, ()))
            yield batch

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # dataset, batch_size, ... of the loader
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)

    def take(self) -> List[Record]:
        """The records that arrived since the last call."""
        records, self._records = self._records, []
        return records


class MarkBadSamples:
    """A test mapper that maps a bad image to ``{"file_name", "image_id", SKIPPED_KEY}``
    instead of raising, for :class:`DropSkippedSamples` to drop."""

    errors = SkipBadSamples.errors

    def __init__(self, mapper: Callable[[dict], Any]):
        self.mapper = mapper

    def __call__(self, dataset_dict: dict) -> dict:
        try:
            return self.mapper(dataset_dict)
        except self.errors as e:
            return {"file_name": dataset_dict.get("file_name"),
                    "image_id": dataset_dict.get("image_id"),
                    SKIPPED_KEY: [(str(dataset_dict.get("file_name", "?")), _reason(e))]}


class DropSkippedSamples:
    """The test loader without the markers of :class:`MarkBadSamples`; each skipped image is
    logged as it is met and listed in :attr:`skipped`. ``len`` is the loader's."""

    def __init__(self, loader: Iterable[List[dict]]):
        self.loader = loader
        self.skipped: List[Record] = []

    def __iter__(self) -> Iterator[List[dict]]:
        self.skipped = []
        for batch in self.loader:
            kept = []
            for sample in batch:
                records = sample.get(SKIPPED_KEY)
                if records is None:
                    kept.append(sample)
                    continue
                for name, reason in records:
                    logger.warning(f"Evaluation skips {name}: {reason}")
                self.skipped.extend(records)
            if kept:
                yield kept

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":
            raise AttributeError(name)
        return getattr(self.loader, name)


class BadFilesHook(HookBase):
    """Count, log and limit the samples the training loader skipped.

    Args:
        loader: the training loader wrapped in :class:`~solo_d2.data.bad_files.SkippedSamples`.
        limit: distinct bad files tolerated (``None``: no limit;
            :func:`~solo_d2.data.bad_files.bad_file_limit` reads ``DATALOADER.MAX_BAD_FILES``).
        limit_text: the limit as the error message states it.
        vote: the step's all-reduce shared with the other hooks that agree every step (the
            trainer's :class:`~solo_d2.utils.comm.StepVote`); by default its own.

    Place it before the metric writers, so that an iteration's counts are written with it.
    """

    def __init__(self, loader: SkippedSamples, limit: Optional[int],
                 limit_text: str = "the limit", vote: Optional[StepVote] = None):
        self.loader = loader
        self.limit = limit
        self.limit_text = limit_text
        self.bad_files: Dict[str, str] = {}
        self.skipped = 0
        self._records: List[Record] = []
        self.vote = vote or StepVote()
        self.vote.provide("bad_files", self._take)

    def _take(self) -> int:
        self._records = self.loader.take()
        return len(self._records)

    def after_step(self) -> None:
        new = self.vote.totals(self.trainer.iter)["bad_files"]
        records, self._records = self._records, []
        if new:
            for rank, theirs in enumerate(all_gather_objects(records)):
                for name, reason in theirs:
                    self.skipped += 1
                    if name in self.bad_files:
                        continue
                    self.bad_files[name] = reason
                    if comm.is_main_process():
                        logger.warning(
                            f"Skipped {name} at iteration {self.trainer.iter} (rank {rank}): "
                            f"{reason}. {len(self.bad_files)} bad files so far "
                            f"({self.limit_text}).")
            if self.limit is not None and len(self.bad_files) > self.limit:
                raise TooManyBadFilesError(too_many_message(self.bad_files, self.limit_text),
                                           self.bad_files, agreed=True)
        if self.skipped:
            storage = self.trainer.storage
            storage.put_scalar("[metric]bad_files", len(self.bad_files), smoothing_hint=False)
            storage.put_scalar("[metric]skipped_samples", self.skipped, smoothing_hint=False)

    def state_dict(self) -> Dict[str, Any]:
        return {"bad_files": dict(self.bad_files), "skipped": self.skipped}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.bad_files = dict(state.get("bad_files", {}))
        self.skipped = int(state.get("skipped", 0))
