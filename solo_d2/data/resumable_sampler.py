"""A training sampler that continues where a resumed run stopped.

Detectron2's training samplers are infinite streams of indices from a fixed seed, and a
resumed run starts the stream from its beginning: after every preemption the run would see
the first images of the first epoch again, and with frequent preemptions images late in the
order would be seen less often or never. :class:`ResumableSampler` wraps any of them and
skips the indices the run has already consumed (``iteration * images per process``) when
the trainer resumes, so that a resumed run sees the images an uninterrupted run would have
seen next. Exact when the batches do not depend on aspect-ratio grouping (images all
landscape or all portrait, or ``DATALOADER.ASPECT_RATIO_GROUPING`` off); with grouping, the
images in the grouping buffers at the time of the stop are the only ones that differ.
Random augmentations (flips) draw from the data workers' own random generators, which restart
with a resumed run.
"""
import itertools
from typing import Iterator

from torch.utils.data import Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler):
    """``sampler`` (infinite, per process, e.g. Detectron2's TrainingSampler) without its
    first :attr:`skip` indices. Set ``skip`` before the loader's iterator is created: the
    trainer creates it at the first iteration, after ``resume_or_load``."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return len(self.sampler)
