"""``MODEL.WEIGHTS`` by URL and by name, as PathManager handlers (Detectron2's mechanism for
``detectron2://`` names), so that every entry point that loads through
:class:`~solo_d2.checkpoint.SOLOCheckpointer` (``train_net.py``, ``demo.py``,
``tools/export_model.py``, ``SOLOPredictor``, ``model_zoo.get``) takes them:

* ``http(s)://.../file.pth``: downloaded once into the cache and verified
  (:mod:`.download`); an mmdet or ImageNet-ResNet checkpoint is converted
  (:mod:`.foreign`) and the result cached beside it (``<file>.solo_d2-v1.pth`` or ``.pkl``),
  so the next use neither downloads nor converts;
* ``solo_d2://<config>``, ``torchvision://<resnet>``, ``open-mmlab://<name>``: the URL of
  :mod:`.catalog`'s table, then as above.

They are registered on :data:`solo_d2.utils.file_io.PathManager` (beside Detectron2's own,
``detectron2://``), the one :class:`~solo_d2.checkpoint.SOLOCheckpointer` uses. The three name schemes are also
registered on Detectron2's PathManager (``import solo_d2``), where no other handler claims
them, so that ``detectron2.utils.file_io.PathManager.get_local_path("solo_d2://...")`` gives
the converted file too. Detectron2's own ``http(s)://`` handler is left as it is.
"""
import logging
import os
import pickle
from typing import Any, List, Optional

import torch
from detectron2.utils import file_io as d2_file_io
from iopath.common.file_io import PathHandler, file_lock

from ..convert.foreign import convert_foreign
from ..convert.safe_load import CheckpointReadError, load_torch_file
from ..utils.file_io import PathManager, atomic_write
from .catalog import NAME_SCHEMES, resolve_weights_name, thing_classes_of_url
from .download import cached_path, fetch

__all__ = ["PathManager", "CONVERTED_TAG", "converted_copies", "loadable_weights"]

logger = logging.getLogger(__name__)

# Beside a converted file's source; the version changes when a conversion's output would.
CONVERTED_TAG = ".solo_d2-v1"
_CONVERTED_EXTS = (".pth", ".pkl")  # mmdet -> torch.save file; ImageNet ResNet -> D2's .pkl


def converted_copies(url: str, cache_dir: Optional[str] = None) -> List[str]:
    """Where the converted form of ``url``'s file is cached (one of these, by kind)."""
    stem = os.path.splitext(cached_path(url, cache_dir))[0] + CONVERTED_TAG
    return [stem + ext for ext in _CONVERTED_EXTS]


def _existing(paths: List[str]) -> Optional[str]:
    return next((p for p in paths if os.path.isfile(p)), None)


def _write_converted(data: dict, dst_stem: str) -> str:
    if data.get("matching_heuristics"):  # numpy arrays, Detectron2's model-zoo .pkl layout
        path = dst_stem + ".pkl"
        atomic_write(path, lambda f: pickle.dump(data, f))
    else:
        path = dst_stem + ".pth"
        atomic_write(path, lambda f: torch.save(data, f))
    return path


def loadable_weights(url: str, cache_dir: Optional[str] = None) -> str:
    """A local file with ``url``'s weights that the checkpointer loads as it is: the cached
    converted file; else the file fetched (:func:`~.download.fetch`), converted and cached
    when it is an mmdet or ImageNet-ResNet checkpoint, or returned as it is when not."""
    converted = converted_copies(url, cache_dir)
    found = _existing(converted)
    if found is not None:
        return found
    raw = fetch(url, cache_dir)
    if raw.endswith(".pkl"):  # Detectron2's model-zoo format: nothing to convert
        return raw
    with file_lock(cached_path(url, cache_dir)):
        found = _existing(converted)  # converted by another process meanwhile
        if found is not None:
            return found
        try:
            data: Any = load_torch_file(raw)
        except CheckpointReadError:
            return raw  # not a torch file: the checkpointer reports it when it reads it
        out = convert_foreign(data, url, default_classes=thing_classes_of_url(url))
        if out is None:
            return raw
        path = _write_converted(out, os.path.splitext(converted[0])[0])
    logger.info(f"Converted {os.path.basename(raw)} ({out['__author__']}) for solo_d2: {path}")
    return path


class WeightsURLHandler(PathHandler):
    """``http(s)://`` weights: downloaded once, verified, converted once (see module doc)."""

    def _get_supported_prefixes(self) -> List[str]:
        return ["http://", "https://"]

    def _get_local_path(self, path: str, force: bool = False, cache_dir: Optional[str] = None,
                        **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        return loadable_weights(path, cache_dir)

    def _open(self, path: str, mode: str = "r", buffering: int = -1, **kwargs: Any):
        self._check_kwargs(kwargs)
        if mode not in ("r", "rb"):
            raise ValueError(f"{path}: weights URLs open for reading only, not {mode!r}")
        return open(self._get_local_path(path), mode)


class WeightsNameHandler(WeightsURLHandler):
    """``solo_d2://``, ``torchvision://``, ``open-mmlab://`` names (:mod:`.catalog`)."""

    def _get_supported_prefixes(self) -> List[str]:
        return list(NAME_SCHEMES)

    def _get_local_path(self, path: str, force: bool = False, cache_dir: Optional[str] = None,
                        **kwargs: Any) -> str:
        self._check_kwargs(kwargs)
        return loadable_weights(resolve_weights_name(path), cache_dir)


PathManager.register_handler(WeightsURLHandler())
PathManager.register_handler(WeightsNameHandler())
d2_file_io.PathManager.register_handler(WeightsNameHandler())
