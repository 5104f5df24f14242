"""Datasets declared in the config: COCO instance or panoptic data, registered by name.

``DATASETS.REGISTER_COCO_INSTANCES [[name, json_file, image_root], ...]`` and
``DATASETS.REGISTER_COCO_PANOPTIC [[name, image_root, panoptic_root, panoptic_json], ...]``
(LazyConfig: ``dataloader.register_coco_instances`` / ``register_coco_panoptic``) let
``DATASETS.TRAIN`` / ``DATASETS.TEST`` name one's own data from the command line, without
writing Python: instance entries go through Detectron2's ``register_coco_instances``, panoptic
ones through :func:`~solo_d2.data.panoptic_datasets.register_panoptic`.
"""
import os
from typing import Dict, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.data.datasets import register_coco_instances

from .panoptic_datasets import register_panoptic

__all__ = [
    "DatasetRegistrationError",
    "register_cfg_datasets",
    "register_coco_datasets",
    "register_panoptic_datasets",
]

_KEY = "DATASETS.REGISTER_COCO_INSTANCES"


class DatasetRegistrationError(ValueError):
    """A dataset the config declares cannot be registered (malformed entry, name taken,
    missing file); the message names the entry. train_net.py prints it as one line."""

# name -> (json_file, image_root) of the datasets registered here
_REGISTERED: Dict[str, Tuple[str, str]] = {}


def register_cfg_datasets(cfg: CfgNode) -> None:
    """Register every ``DATASETS.REGISTER_COCO_INSTANCES`` entry (:func:`register_coco_datasets`)
    and every ``DATASETS.REGISTER_COCO_PANOPTIC`` entry
    (:func:`register_panoptic_datasets`)."""
    register_coco_datasets(cfg.DATASETS.REGISTER_COCO_INSTANCES, _KEY)
    register_panoptic_datasets(cfg.DATASETS.get("REGISTER_COCO_PANOPTIC", []))


def register_coco_datasets(entries: Sequence[Sequence[str]], key: str = _KEY) -> None:
    """Register every ``[name, json_file, image_root]`` of ``entries`` (relative paths against
    the current directory); ``key`` is the setting they come from (a LazyConfig's
    ``dataloader.register_coco_instances``). Calling it again with the same entries does
    nothing; a name already registered otherwise, or a missing file or folder, is a ValueError
    naming the entry."""
    for entry in entries:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 3
                and all(isinstance(x, str) and x for x in entry)):
            raise DatasetRegistrationError(
                f"{key} entry {entry!r}: expected [name, json_file, image_root]")
        name, json_file, image_root = entry
        source = (os.path.abspath(os.path.expanduser(json_file)),
                  os.path.abspath(os.path.expanduser(image_root)))
        if _REGISTERED.get(name) == source:
            continue
        if name in DatasetCatalog.list():
            raise DatasetRegistrationError(
                f"{key}: a dataset named {name!r} is already registered; choose another name")
        if not os.path.isfile(source[0]):
            raise DatasetRegistrationError(
                f"{key} entry {name!r}: json file {json_file!r} does not exist")
        if not os.path.isdir(source[1]):
            raise DatasetRegistrationError(
                f"{key} entry {name!r}: image folder {image_root!r} does not exist")
        register_coco_instances(name, {}, *source)
        _REGISTERED[name] = source


PANOPTIC_KEY = "DATASETS.REGISTER_COCO_PANOPTIC"
# name -> (image_root, panoptic_root, panoptic_json) of the panoptic datasets registered here
_REGISTERED_PANOPTIC: Dict[str, Tuple[str, str, str]] = {}


def register_panoptic_datasets(entries: Sequence[Sequence[str]], key: str = PANOPTIC_KEY) -> None:
    """Register every ``[name, image_root, panoptic_root, panoptic_json]`` of ``entries``
    (relative paths against the current directory); ``key`` is the setting they come from.
    Calling it again with the same entries does nothing; a malformed entry, a name already
    registered otherwise, or a missing file or folder is a DatasetRegistrationError (a
    ValueError) naming the entry."""
    for entry in entries:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 4
                and all(isinstance(x, str) and x for x in entry)):
            raise DatasetRegistrationError(
                f"{key} entry {entry!r}: expected [name, image_root, panoptic_root, "
                "panoptic_json]")
        name = entry[0]
        image_root, panoptic_root, panoptic_json = (
            os.path.abspath(os.path.expanduser(p)) for p in entry[1:])
        source = (image_root, panoptic_root, panoptic_json)
        if _REGISTERED_PANOPTIC.get(name) == source:
            continue
        if name in DatasetCatalog.list():
            raise DatasetRegistrationError(
                f"{key}: a dataset named {name!r} is already registered; choose another name")
        for what, path, exists in (("image_root", image_root, os.path.isdir),
                                   ("panoptic_root", panoptic_root, os.path.isdir),
                                   ("panoptic_json", panoptic_json, os.path.isfile)):
            if not exists(path):
                raise DatasetRegistrationError(
                    f"{key} entry {name!r}: {what} {path!r} does not exist")
        register_panoptic(name, *source)
        _REGISTERED_PANOPTIC[name] = source
