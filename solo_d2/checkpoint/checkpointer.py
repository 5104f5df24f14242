"""Detectron2's DetectionCheckpointer, made safe against interrupted saves and foreign files.

* Saves are atomic: a checkpoint is written to a temporary file beside its final name and
  renamed when complete, and so is ``last_checkpoint``. A run killed while saving leaves the
  previous checkpoints as they were and no file cut short under a checkpoint's name.
* Resuming picks the newest *complete* checkpoint, should ``last_checkpoint`` name a file that
  is missing or cut short (written by an older, non-atomic save).
* Resuming into a model whose parameter shapes differ from the checkpoint's (a changed
  ``MODEL.SOLO.NUM_CLASSES``, say) stops with the shapes and the way out, instead of failing
  later inside the optimizer. Loading ``MODEL.WEIGHTS`` to fine-tune keeps Detectron2's
  behaviour: mismatched tensors are skipped with a warning.
* ``.pkl`` weights are read by an unpickler that knows numpy arrays and nothing else
  (Detectron2 unpickles them fully). ``.pth`` files go through the tensors-only reader
  (:func:`~.safe_load.load_torch_file`).
* Weights from elsewhere load as they are: ``MODEL.WEIGHTS`` may be an ``http(s)://`` URL or a
  name (``solo_d2://SOLOv2_R50_3x``, ``torchvision://resnet50``), downloaded once, verified and
  converted (:mod:`.path_handlers`), and a local mmdet or torchvision checkpoint file is
  recognised and converted on load (:mod:`.foreign`).
"""
import glob
import os
from typing import Any, Callable, Dict, IO, List, Optional
from urllib.parse import urlparse

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .foreign import convert_foreign
from .safe_load import (CheckpointReadError, is_complete_torch_file, load_numpy_pickle,
                        load_torch_file)

__all__ = ["SOLOCheckpointer", "atomic_write"]

_TMP_SUFFIX = ".incomplete"


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path``, then rename it to ``path``: the
    file under ``path`` is either the old one or the complete new one."""
    tmp = f"{path}{_TMP_SUFFIX}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class SOLOCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, resume from the last complete checkpoint,
    a clear stop when resuming into different shapes, and code-free ``.pkl`` reading."""

    _resuming_from: Optional[str] = None  # the checkpoint being resumed from, during load()

    def __init__(self, model, save_dir: str = "", *, save_to_disk: Optional[bool] = None,
                 **checkpointables: Any) -> None:
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        from .path_handlers import PathManager  # imports this module: not at the top

        self.path_manager = PathManager  # weights by URL and by name

    def _is_local(self) -> bool:
        return bool(self.save_dir) and "://" not in self.save_dir

    def save(self, name: str, **kwargs: Any) -> None:
        if not (self._is_local() and self.save_to_disk):
            return super().save(name, **kwargs)
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not self._is_local():
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename.encode()),
        )

    def _remove_leftovers(self) -> None:
        """Temporary files of saves that were killed before their rename."""
        for path in glob.glob(os.path.join(glob.escape(self.save_dir), f"*{_TMP_SUFFIX}")):
            self.logger.warning(f"Removing {path}, left by a save that did not finish")
            os.remove(path)

    def get_checkpoint_file(self) -> str:
        """The checkpoint ``last_checkpoint`` names if it is complete, else the newest complete
        ``.pth`` in the folder ("" when there is none)."""
        tagged = super().get_checkpoint_file()
        if not self._is_local() or (tagged and is_complete_torch_file(tagged)):
            return tagged
        complete = [p for p in self.get_all_checkpoint_files() if is_complete_torch_file(p)]
        if not complete:
            return ""
        newest = max(complete, key=os.path.getmtime)
        self.logger.warning(
            f"{tagged or 'last_checkpoint'} is missing or incomplete; resuming from {newest}, "
            "the newest complete checkpoint"
        )
        return newest

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if resume and self._is_local() and self.save_to_disk and os.path.isdir(self.save_dir):
            self._remove_leftovers()
        return super().resume_or_load(path, resume=resume)

    def has_checkpoint(self) -> bool:
        return bool(self.get_checkpoint_file())

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        local = urlparse(path)._replace(query="").geturl() if path else path
        if local and "://" not in local and not os.path.isfile(local):
            raise CheckpointReadError(
                f"MODEL.WEIGHTS {path!r}: no such file (expected a checkpoint file, an "
                "http(s):// URL, or a name such as solo_d2://SOLOv2_R50_3x or "
                "torchvision://resnet50)"
            )
        # Loading the trainer / optimizer state means resuming: shapes must then match.
        resuming = checkpointables is None or len(checkpointables) > 0
        self._resuming_from = path if resuming else None
        try:
            return super().load(path, checkpointables)
        finally:
            self._resuming_from = None

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if not filename.endswith(".pkl"):
            return super()._load_file(filename)
        data = load_numpy_pickle(filename)
        if "model" in data and "__author__" in data:
            self.logger.info(f"Reading a file from '{data['__author__']}'")
            return data
        # Caffe2 / Detectron1 model-zoo layout, as Detectron2 reads it
        data = data.get("blobs", data)
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    def _torch_load(self, f: str) -> Dict[str, Any]:
        data = load_torch_file(f)
        converted = convert_foreign(data, f)
        if converted is None:
            return data
        self.logger.info(f"{f}: a {converted['__author__']} checkpoint, converted on load")
        return converted

    def _load_model(self, checkpoint: Dict[str, Any]):
        if self._resuming_from is not None:
            self._check_same_shapes(checkpoint["model"])
        return super()._load_model(checkpoint)

    def _check_same_shapes(self, state: Dict[str, Any]) -> None:
        ours = self.model.state_dict()
        diff = [
            (k, tuple(v.shape), tuple(ours[k].shape))
            for k, v in state.items()
            if k in ours and hasattr(v, "shape") and tuple(v.shape) != tuple(ours[k].shape)
        ]
        if not diff:
            return
        listed = "; ".join(f"{k}: checkpoint {a}, model {b}" for k, a, b in diff[:4])
        hint = ""
        cls = state.get("head.conv_cls.weight")
        if cls is not None and "head.conv_cls.weight" in ours:
            hint = (
                f" The checkpoint predicts {cls.shape[0]} classes, this config "
                f"{ours['head.conv_cls.weight'].shape[0]} (MODEL.SOLO.NUM_CLASSES)."
            )
        raise ValueError(
            f"Cannot resume from {self._resuming_from}: {len(diff)} tensors have other shapes than "
            f"this model's ({listed}).{hint} Resume with the config the run was started with, "
            "or train in a new OUTPUT_DIR (MODEL.WEIGHTS can start it from this checkpoint's "
            "weights; mismatched tensors are then skipped)."
        )
