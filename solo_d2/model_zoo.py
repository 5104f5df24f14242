"""Configs by name, from any folder, as Detectron2's ``model_zoo.get_config_file`` gives its own.

The yaml files under the repository's ``configs/`` ship inside the installed package
(``solo_d2/configs``, made by setup.py):

    cfg = solo_d2.model_zoo.get_config("SOLO_R50_1x.yaml")
    path = solo_d2.model_zoo.get_config_file("quick_schedules/SOLO_R18_shapes.yaml")
"""
import glob
import os
from typing import List

from detectron2.config import CfgNode, get_cfg

from .config import add_solo_config

__all__ = ["get_config_file", "get_config", "list_configs"]

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
