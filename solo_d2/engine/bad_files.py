"""The trainer's side of bad files (:mod:`solo_d2.data.bad_files`): after every iteration the
skip records of all processes are summed (one all-reduce of a count; their names are gathered
only when there are some), each file is logged once by rank 0, the counts go to the metrics
(``metrics.json``, TensorBoard, and the console line as ``[metric]bad_files`` and
``[metric]skipped_samples``), and past the limit every process stops together with the list
(exit status 65). The list and counts are part of the checkpoint, so a resumed run keeps
counting towards the same limit."""
import logging
from typing import Any, Dict, Optional

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..data.bad_files import SkippedSamples, TooManyBadFilesError, too_many_message
from ..distributed import all_gather_objects, sum_over_processes

__all__ = ["BadFilesHook"]

logger = logging.getLogger(__name__)


class BadFilesHook(HookBase):
    """Count, log and limit the samples the training loader skipped.

    Args:
        loader: the training loader wrapped in :class:`~solo_d2.data.bad_files.SkippedSamples`.
        limit: distinct bad files tolerated (``None``: no limit;
            :func:`~solo_d2.data.bad_files.bad_file_limit` reads ``DATALOADER.MAX_BAD_FILES``).
        limit_text: the limit as the error message states it.

    Place it before the metric writers, so that an iteration's counts are written with it.
    """

    def __init__(self, loader: SkippedSamples, limit: Optional[int], limit_text: str = "the limit"):
        self.loader = loader
        self.limit = limit
        self.limit_text = limit_text
        self.bad_files: Dict[str, str] = {}
        self.skipped = 0

    def after_step(self) -> None:
        records = self.loader.take()
        (new,) = sum_over_processes(len(records))
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
