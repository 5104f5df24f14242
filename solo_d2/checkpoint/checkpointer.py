"""Detectron2's DetectionCheckpointer, made safe against interrupted saves, full disks and
foreign files.

* Saves are atomic: a checkpoint is written to a temporary file beside its final name and
  renamed when complete, and so is ``last_checkpoint``. A run killed while saving leaves the
  previous checkpoints as they were and no file cut short under a checkpoint's name.
* A save that fails (disk full, quota, read-only folder) leaves the previous checkpoint and
  ``last_checkpoint`` as they were and raises :class:`CheckpointWriteError` (exit status 74)
  saying so, not torch.save's error from deep inside. With ``defer_write_errors`` (the
  trainer's: Detectron2 saves on rank 0 alone), the error is kept in :attr:`write_error` for
  the trainer's hook to raise on every process together
  (:class:`~solo_d2.launch.agreed_stop.AgreedStopHook`).
* Resuming takes only checkpoints the trainer wrote: ``model_NNNNNNN.pth`` or
  ``model_final.pth``, complete, holding what this checkpointer saves (for a trainer's: its
  iteration and optimizer state); ``last_checkpoint``'s if it is one, else the one of the
  highest iteration. A converted
  mmdet model or downloaded weights kept in the output folder are never resumed from: with no
  checkpoint of the run, ``--resume`` starts from ``MODEL.WEIGHTS`` at iteration 0, as
  Detectron2 does, and says so.
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
import errno
import glob
import os
import re
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import urlparse

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..convert.foreign import convert_foreign
from ..convert.safe_load import (CheckpointReadError, is_complete_torch_file, load_numpy_pickle,
                        load_torch_file)
from ..utils.exit_status import CheckpointWriteError
from ..utils.file_io import TMP_SUFFIX, atomic_write
from .path_handlers import PathManager

__all__ = ["CheckpointWriteError", "SOLOCheckpointer", "is_run_checkpoint"]

#: file names the trainer gives its checkpoints (Detectron2's PeriodicCheckpointer's)
_RUN_CHECKPOINT = re.compile(r"model_(\d{7}|final)\.pth")


def is_run_checkpoint(path: str, checkpointables: Sequence[str] = ("trainer",)) -> bool:
    """Whether ``path`` is a checkpoint a trainer's checkpointer wrote: named
    ``model_NNNNNNN.pth`` or ``model_final.pth``, complete, holding the model and the state
    of each of ``checkpointables`` (for "trainer": the iteration and the optimizer state)."""
    if not _RUN_CHECKPOINT.fullmatch(os.path.basename(path)) or not is_complete_torch_file(path):
        return False
    try:  # mmap: the tensors are not read
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    if not isinstance(data, dict) or "model" not in data:
        return False
    if any(key not in data for key in checkpointables):
        return False
    if "trainer" in checkpointables:
        trainer = data["trainer"] if isinstance(data["trainer"], dict) else {}
        inner = trainer.get("_trainer") if isinstance(trainer.get("_trainer"), dict) else {}
        return "iteration" in trainer and ("optimizer" in trainer or "optimizer" in inner)
    return True


def _write_failed(save_file: str, e: OSError, previous: str) -> str:
    code = errno.errorcode.get(e.errno, "") if e.errno else ""
    reason = f"{e.strerror or e}" + (f" ({code})" if code else "")
    kept = (f"the previous checkpoint {previous} is intact and last_checkpoint still names it"
            if previous else "no earlier checkpoint of this run exists")
    hint = ("Free space on that disk (or move OUTPUT_DIR), then continue with --resume."
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else
            "Make OUTPUT_DIR writable, then continue with --resume.")
    return (f"Could not write the checkpoint {save_file}: {reason}. Nothing was written under "
            f"its name; {kept}. {hint}")


class SOLOCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer with atomic saves, a clear stop when a save fails, resume from the
    run's own last complete checkpoint only, a clear stop when resuming into different shapes,
    and code-free ``.pkl`` reading (see the module docstring).

    Args:
        defer_write_errors: a failed write is logged and kept in :attr:`write_error` (the
            message) instead of raised, for a caller that makes every process stop together
            (the trainer's :class:`~solo_d2.launch.agreed_stop.AgreedStopHook`).
        Other arguments: DetectionCheckpointer's.
    """

    _resuming_from: Optional[str] = None  # the checkpoint being resumed from, during load()

    def __init__(self, model, save_dir: str = "", *, save_to_disk: Optional[bool] = None,
                 defer_write_errors: bool = False, **checkpointables: Any) -> None:
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.path_manager = PathManager  # weights by URL and by name
        self.defer_write_errors = defer_write_errors
        self.write_error = ""

    def _is_local(self) -> bool:
        return bool(self.save_dir) and "://" not in self.save_dir

    def save(self, name: str, **kwargs: Any) -> None:
        if not (self._is_local() and self.save_to_disk):
            return super().save(name, **kwargs)
        save_file = os.path.join(self.save_dir, f"{name}.pth")
        tag = os.path.join(self.save_dir, "last_checkpoint")
        previous = super().get_checkpoint_file() if os.path.isfile(tag) else ""
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        self.logger.info(f"Saving checkpoint to {save_file}")
        try:
            os.makedirs(self.save_dir, exist_ok=True)
            atomic_write(save_file, lambda f: torch.save(data, f))
            self.tag_last_checkpoint(os.path.basename(save_file))
        except OSError as e:
            message = _write_failed(save_file, e, previous)
            if not self.defer_write_errors:
                raise CheckpointWriteError(message) from None
            self.logger.error(message)
            self.write_error = self.write_error or message

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not self._is_local():
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename.encode()),
        )

    def _remove_leftovers(self) -> None:
        """Temporary files of saves that were killed before their rename."""
        for path in glob.glob(os.path.join(glob.escape(self.save_dir), f"*{TMP_SUFFIX}")):
            self.logger.warning(f"Removing {path}, left by a save that did not finish")
            os.remove(path)

    def get_checkpoint_file(self) -> str:
        """The checkpoint to resume from: ``last_checkpoint``'s if it is one of the run's
        (:func:`is_run_checkpoint`), else the run's checkpoint of the highest iteration, else
        "" (other ``.pth`` files in the folder are never taken)."""
        tagged = super().get_checkpoint_file()
        if not self._is_local():
            return tagged
        ours = list(self.checkpointables)
        if tagged and is_run_checkpoint(tagged, ours):
            return tagged

        def order(path: str):
            number = _RUN_CHECKPOINT.fullmatch(os.path.basename(path)).group(1)
            return (number == "final", number)

        names = [p for p in self.get_all_checkpoint_files()
                 if _RUN_CHECKPOINT.fullmatch(os.path.basename(p))]
        newest = next((p for p in sorted(names, key=order, reverse=True)
                       if is_run_checkpoint(p, ours)), "")
        if newest:
            self.logger.warning(
                f"{tagged or 'last_checkpoint'} is missing, incomplete or not a checkpoint of "
                f"this trainer; resuming from {newest}, the run's newest complete checkpoint")
        return newest

    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        if resume and self._is_local() and self.save_to_disk and os.path.isdir(self.save_dir):
            self._remove_leftovers()
        if resume and self._is_local() and not self.has_checkpoint():
            others = (sorted(os.path.basename(p) for p in self.get_all_checkpoint_files())
                      if os.path.isdir(self.save_dir) else [])
            self.logger.info(
                f"--resume: no checkpoint of this run in {self.save_dir} (model_NNNNNNN.pth or "
                "model_final.pth with the trainer's iteration and optimizer state)"
                + (f"; not resuming from {', '.join(others)}, which the trainer did not write"
                   if others else "")
                + f". Starting from MODEL.WEIGHTS ({path or 'empty: random initialisation'}) "
                "at iteration 0."
            )
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
