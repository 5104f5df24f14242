"""File I/O every room shares: writes that are whole or not at all (:func:`atomic_write`), and
:data:`PathManager`, the path manager through which weights are opened (Detectron2's own
handlers; :mod:`solo_d2.checkpoint.path_handlers` adds the weights URL and name handlers)."""
import os
from typing import IO, Callable, Optional

from detectron2.checkpoint.catalog import ModelCatalogHandler
from detectron2.utils import file_io as d2_file_io
from iopath.common.file_io import OneDrivePathHandler
from iopath.common.file_io import PathManager as PathManagerBase

__all__ = ["PathManager", "TMP_SUFFIX", "atomic_write"]

#: suffix of the temporary file an :func:`atomic_write` renames when complete
TMP_SUFFIX = ".incomplete"

PathManager = PathManagerBase()
"""solo_d2's PathManager for weights: Detectron2's handlers (``detectron2://``, its model
catalog, OneDrive), plus the weights handlers :mod:`solo_d2.checkpoint.path_handlers`
registers (verified ``http(s)://`` downloads, ``solo_d2://`` and the other weights names)."""
for _handler in (OneDrivePathHandler(), d2_file_io.Detectron2Handler(), ModelCatalogHandler()):
    PathManager.register_handler(_handler)


class _RecordingWriter:
    """A file's ``write`` that remembers the first OSError (torch.save may report a failed
    write as its own RuntimeError, without the errno)."""

    def __init__(self, f: IO[bytes]):
        self._f = f
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        self._f.flush()


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``: the
    file under ``path`` is either the old one or the complete new one. A failed write raises
    the OSError that caused it (``ENOSPC``, ...), whatever the writer made of it."""
    tmp = f"{path}{TMP_SUFFIX}"
    recorder = None
    try:
        with open(tmp, "wb") as f:
            recorder = _RecordingWriter(f)
            write(recorder)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as e:
        if recorder is not None and recorder.error is not None and recorder.error is not e:
            raise recorder.error from None
        raise
    finally:
        if os.path.lexists(tmp):
            os.remove(tmp)
