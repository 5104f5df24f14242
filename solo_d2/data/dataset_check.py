"""Check a whole dataset before training: every record through the mapper the trainer uses,
in parallel DataLoader workers, and the list of the files that fail (the images and
annotations a training run would skip, :mod:`solo_d2.data.bad_files`)."""
from typing import Callable, List, Sequence, Tuple

import torch.utils.data as torchdata

from .bad_files import SkipBadSamples

__all__ = ["find_bad_samples"]


class _CheckEach(torchdata.Dataset):
    def __init__(self, records: Sequence[dict], mapper: Callable[[dict], dict]):
        self.records = records
        self.mapper = mapper

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Tuple[str, str]:
        record = self.records[index]
        try:
            self.mapper(record)
        except SkipBadSamples.errors as e:
            text = str(e).strip()
            return str(record.get("file_name", "?")), text.splitlines()[0] if text else type(e).__name__
        return "", ""


def find_bad_samples(records: Sequence[dict], mapper: Callable[[dict], dict],
                     num_workers: int = 0, progress: Callable[[int, int], None] = None
                     ) -> List[Tuple[str, str]]:
    """``[(file_name, reason), ...]`` of the records ``mapper`` cannot map (an image that
    cannot be read, an annotation that cannot become a mask), in dataset order.
    ``progress(done, total)`` is called every 100 records."""
    loader = torchdata.DataLoader(_CheckEach(records, mapper), batch_size=None,
                                  num_workers=num_workers)
    bad = []
    for done, (name, reason) in enumerate(loader, start=1):
        if name:
            bad.append((name, reason))
        if progress is not None and (done % 100 == 0 or done == len(records)):
            progress(done, len(records))
    return bad
