"""Reading checkpoint files from elsewhere without running code they contain.

Unpickling can call any function a file names. Two readers here never do:

* :func:`load_torch_file` reads ``torch.save`` files with torch's tensors-only unpickler.
  Classes a file names beyond tensors and containers (mmengine's ``HistoryBuffer`` and numpy
  arrays in an mmdet checkpoint's ``meta`` or ``message_hub``) become inert
  :class:`OpaqueObject` stand-ins that hold their arguments and state as data; torch's
  blocklisted modules (``os``, ``subprocess``, ...) are refused. Both of torch's formats are
  read: the zip format and the legacy one (mmdet's published checkpoints are written in
  it). Only ``trusted=True``, the user's explicit word, unpickles a file fully.
* :func:`load_numpy_pickle` reads Detectron2's model-zoo ``.pkl`` files (dicts of numpy
  arrays) with an unpickler that knows numpy's array constructors and nothing else.

Every failure is a :class:`CheckpointReadError` with a one-line message naming the file.
"""
import collections
import os
import pickle
import re
import zipfile
from typing import Any, Dict, Tuple

import torch
from torch.serialization import get_unsafe_globals_in_checkpoint, safe_globals

__all__ = [
    "CheckpointReadError",
    "OpaqueObject",
    "check_readable_file",
    "is_complete_torch_file",
    "load_numpy_pickle",
    "load_torch_file",
]


class CheckpointReadError(ValueError):
    """A checkpoint file is missing, unreadable, corrupt, or would run code when loaded."""


class OpaqueObject:
    """Stand-in for an object of a class that a checkpoint names and that is not loaded.

    ``source_name`` is the class's dotted name in the file; the constructor arguments and
    the pickled state are kept as plain data (``args``, ``kwargs``, ``state``). Nothing of
    the class is imported or run.
    """

    source_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<not loaded: {self.source_name}>"


def _opaque_class(name: str) -> type:
    return type("OpaqueObject", (OpaqueObject,), {"source_name": name})


def check_readable_file(path: str) -> None:
    """Raise CheckpointReadError unless ``path`` is an existing, non-empty regular file."""
    if not os.path.exists(path):
        raise CheckpointReadError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointReadError(f"{path}: is a directory, expected a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f"{path}: the file is empty")


def is_complete_torch_file(path: str) -> bool:
    """Whether a ``torch.save`` file (zip format) is whole: a file cut short loses the zip's
    central directory, which is written last."""
    try:
        with zipfile.ZipFile(path) as z:
            return len(z.namelist()) > 0
    except (OSError, zipfile.BadZipFile):
        return False


# most classes other than tensors and containers that one checkpoint may name (mmengine's
# HistoryBuffer, numpy's array and scalar constructors and dtypes, ...)
_MAX_FOREIGN_CLASSES = 32


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _blocked_global(e: BaseException) -> str:
    """The GLOBAL that torch's tensors-only unpickler refused, from its message."""
    m = re.search(r"GLOBAL ([\w.]+)", str(e))
    return m.group(1) if m else _first_line(e)


def load_torch_file(path: str, *, trusted: bool = False) -> Any:
    """Load a ``torch.save`` file onto the CPU.

    Args:
        path: the file.
        trusted: unpickle fully (may run code the file names). Only for files the user says
            come from a source they trust.
    Returns:
        The unpickled object; classes torch does not allowlist are :class:`OpaqueObject`.
    Raises:
        CheckpointReadError: missing, empty, directory, cut short or corrupt, or (untrusted)
            naming a function of a module torch blocks, such as ``os.system``.
    """
    check_readable_file(path)
    if trusted:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - any reason the file does not load
            raise CheckpointReadError(
                f"{path}: not a readable checkpoint ({_first_line(e)})"
            ) from e
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        if not (isinstance(e, pickle.UnpicklingError) and "GLOBAL" in str(e)):
            raise CheckpointReadError(
                f"{path}: not a readable PyTorch checkpoint, corrupt or cut short "
                f"({_first_line(e)})"
            ) from e
        refused = e
    if is_complete_torch_file(path):
        names = get_unsafe_globals_in_checkpoint(path)
    else:
        # torch's legacy (non-zip) format, which mmdet's publish_model.py writes: its globals
        # cannot be listed up front, so they are learnt one refusal at a time.
        names = [_blocked_global(refused)]
    for _ in range(_MAX_FOREIGN_CLASSES):
        try:
            with safe_globals([(_opaque_class(n), n) for n in names]):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            found = _blocked_global(e)
            if "GLOBAL" not in str(e) or "is blocked" in str(e) or found in names:
                raise CheckpointReadError(
                    f"{path}: names {found}, which could run code when loaded; refused "
                    "(load it as trusted, --trusted, only if you trust its source)"
                ) from e
            names.append(found)
        except Exception as e:  # noqa: BLE001
            raise CheckpointReadError(f"{path}: corrupt checkpoint ({_first_line(e)})") from e
    raise CheckpointReadError(
        f"{path}: names more than {_MAX_FOREIGN_CLASSES} classes beyond tensors and "
        "containers; refused (load it as trusted, --trusted, only if you trust its source)"
    )


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    """numpy's array constructors, under the module names numpy 1 and numpy 2 write."""
    import numpy as np

    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    table: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "_reconstruct")] = multiarray._reconstruct
        table[(module, "scalar")] = multiarray.scalar
    return table


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global that the numpy-only unpickler does not allow."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._allowed:
            return self._allowed[(module, name)]
        raise _RefusedGlobal(f"{module}.{name}")


def load_numpy_pickle(path: str) -> Any:
    """Unpickle a Detectron2 model-zoo ``.pkl`` (containers of numpy arrays, strings and
    numbers); any other class it names is refused, never imported."""
    check_readable_file(path)
    try:
        with open(path, "rb") as f:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        raise CheckpointReadError(
            f"{path}: names {e}, which is not a numpy array or container; Detectron2 .pkl "
            "weights hold only those, so the file is refused unread"
        ) from e
    except Exception as e:  # noqa: BLE001
        raise CheckpointReadError(f"{path}: corrupt pickle ({_first_line(e)})") from e
