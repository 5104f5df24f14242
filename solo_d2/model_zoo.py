"""Configs by name, from any folder, as Detectron2's ``model_zoo.get_config_file`` gives its own.

The yaml files under the repository's ``configs/`` ship inside the installed package
(``solo_d2/configs``, made by setup.py):

    cfg = solo_d2.model_zoo.get_config("SOLO_R50_1x.yaml")
    path = solo_d2.model_zoo.get_config_file("quick_schedules/SOLO_R18_shapes.yaml")

and models with mmdet's published COCO weights, as Detectron2's ``model_zoo.get`` gives its own
(the table: :data:`solo_d2.checkpoint.COCO_MODELS`, docs/MODEL_ZOO.md):

    model = solo_d2.model_zoo.get("SOLOv2_R50_3x.yaml", trained=True)
    url = solo_d2.model_zoo.get_checkpoint_url("SOLOv2_R50_3x.yaml")
"""
import glob
import os
from typing import List, Optional

import torch
from detectron2.config import CfgNode, get_cfg

from .config import add_solo_config

__all__ = ["get_config_file", "get_config", "list_configs", "get_checkpoint_url", "get"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _configs_dir() -> str:
    """The shipped configs (installed package), else the source checkout's ``configs/``."""
    for d in (os.path.join(_PACKAGE_DIR, "configs"), os.path.join(_PACKAGE_DIR, "..", "configs")):
        if os.path.isfile(os.path.join(d, "Base-SOLO.yaml")):
            return os.path.realpath(d)
    raise RuntimeError(
        f"solo_d2's configs are missing from {_PACKAGE_DIR}: reinstall the package "
        "(pip install -e . makes solo_d2/configs)"
    )


def list_configs() -> List[str]:
    """Names of every shipped config, relative to ``configs/`` (e.g. 'SOLO_R50_1x.yaml')."""
    root = _configs_dir()
    return sorted(
        os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
    )


def get_config_file(config_path: str) -> str:
    """Absolute path of a shipped config, named relative to ``configs/``.

    Raises:
        RuntimeError: naming the shipped configs when ``config_path`` is not one of them.
    """
    path = os.path.join(_configs_dir(), config_path)
    if not os.path.isfile(path):
        raise RuntimeError(
            f"{config_path!r} is not a solo_d2 config; shipped configs: {', '.join(list_configs())}"
        )
    return path


def get_config(config_path: str) -> CfgNode:
    """Detectron2's config with the SOLO keys and the shipped config ``config_path`` merged."""
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.merge_from_file(get_config_file(config_path))
    return cfg


def get_checkpoint_url(config_path: str) -> str:
    """URL of mmdet's published COCO weights of the shipped config ``config_path`` (named as
    :func:`get_config` takes it); ``solo_d2://<config without .yaml>`` stands for the same.

    Raises:
        RuntimeError: naming the configs that have published weights, when this one has none.
    """
    from .checkpoint.catalog import COCO_MODELS

    model = COCO_MODELS.get(config_path)
    if model is None or model.url is None:
        published = ", ".join(c for c, m in COCO_MODELS.items() if m.url)
        raise RuntimeError(f"{config_path!r} has no published weights; configs that have: "
                           f"{published}")
    return model.url


def get(config_path: str, trained: bool = False, device: Optional[str] = None) -> torch.nn.Module:
    """The model of a shipped config, built by Detectron2's ``build_model`` and loaded, as
    Detectron2's ``model_zoo.get``: with mmdet's published COCO weights when ``trained``
    (downloaded once and converted, see :func:`get_checkpoint_url`), else with the config's
    ``MODEL.WEIGHTS`` (its ImageNet backbone). ``device`` defaults to "cpu" without CUDA.

    The returned model has ``thing_classes``: the class names of its outputs, those the
    checkpoint carries (COCO's for published weights), else those of the config's first
    ``DATASETS.TEST`` (Detectron2's metadata; COCO's for the COCO configs).
    """
    from detectron2.data import MetadataCatalog
    from detectron2.modeling import build_model

    from .checkpoint import SOLOCheckpointer

    cfg = get_config(config_path)
    if trained:
        cfg.MODEL.WEIGHTS = get_checkpoint_url(config_path)
    if device is None and not torch.cuda.is_available():
        device = "cpu"
    if device is not None:
        cfg.MODEL.DEVICE = device
    model = build_model(cfg)
    extra = SOLOCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    classes = extra.get("thing_classes")
    if classes is None and len(cfg.DATASETS.TEST):
        classes = MetadataCatalog.get(cfg.DATASETS.TEST[0]).get("thing_classes")
    model.thing_classes = list(classes) if classes is not None else None
    return model
