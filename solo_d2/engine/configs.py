"""Both kinds of config behind one set of functions: a yaml config (Detectron2's ``CfgNode``
with the SOLO keys) or a LazyConfig (``.py``, an omegaconf ``DictConfig`` of ``model``,
``dataloader``, ``optimizer``, ``lr_multiplier`` and ``train``, as Detectron2's
``tools/lazyconfig_train_net.py`` reads them).

``train_net.py``, ``demo.py``, the predictor, the export and benchmark tools take either
through :func:`load_config` and read what they need with the functions here, so that each
tool has one code path for both.
"""
import copy
import functools
from datetime import timedelta
from typing import Any, Dict, List, Sequence, Tuple, Union

import torch
from detectron2.config import CfgNode, LazyConfig, get_cfg, instantiate
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from omegaconf import DictConfig, ListConfig, OmegaConf
from torch import nn

from ..config import add_solo_config
from ..data.cfg_datasets import (
    register_cfg_datasets,
    register_coco_datasets,
    register_panoptic_datasets,
)
from ..data.transforms import build_solo_augmentation

__all__ = [
    "AnyConfig",
    "LAZY_REGISTER_KEY",
    "is_lazy",
    "get_solo_cfg",
    "load_config",
    "with_overrides",
    "register_datasets",
    "config_device",
    "config_weights",
    "config_output_dir",
    "config_num_classes",
    "cluster_setting",
    "launch_options",
    "max_bad_files",
    "build_solo_model",
    "inference_augmentations",
    "inference_augmentation",
    "input_format",
    "dataset_names",
]

AnyConfig = Union[CfgNode, DictConfig]

#: a LazyConfig's list of [name, json_file, image_root] registered before loading data
LAZY_REGISTER_KEY = "dataloader.register_coco_instances"
#: a LazyConfig's list of [name, image_root, panoptic_root, panoptic_json] (COCO panoptic)
LAZY_PANOPTIC_KEY = "dataloader.register_coco_panoptic"
#: the top-level keys every solo_d2 LazyConfig has
_LAZY_KEYS = ("model", "dataloader", "train")


def is_lazy(cfg: AnyConfig) -> bool:
    """Whether ``cfg`` is a LazyConfig (else a yaml CfgNode)."""
    return isinstance(cfg, DictConfig)


def _check_lazy_overrides(opts: Sequence[str]) -> None:
    bad = [o for o in opts if "=" not in o]
    if bad:
        raise ValueError(
            f"LazyConfig overrides are key=value (e.g. train.max_iter=100); got {bad}. "
            "KEY VALUE pairs are for yaml configs"
        )


def with_overrides(cfg: AnyConfig, opts: Sequence[str]) -> AnyConfig:
    """A copy of ``cfg`` with command-line overrides: ``KEY VALUE`` pairs for a yaml config,
    ``key=value`` for a LazyConfig (Detectron2's ``LazyConfig.apply_overrides``)."""
    opts = list(opts)
    if is_lazy(cfg):
        _check_lazy_overrides(opts)
        return LazyConfig.apply_overrides(copy.deepcopy(cfg), opts)
    out = cfg.clone()
    out.defrost()
    out.merge_from_list(opts)
    out.freeze()
    return out


def _is_saved_lazy_config(path: str) -> bool:
    """Whether a yaml file is a LazyConfig as ``LazyConfig.save`` writes it (the
    ``config.yaml`` of a LazyConfig run: top-level ``model`` and ``train``, lower case)."""
    import yaml

    try:
        with open(path) as f:
            top = yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(top, dict) and "model" in top and "train" in top


def get_solo_cfg(config_file: str, opts=()) -> CfgNode:
    """Detectron2's config with the SOLO keys, ``config_file`` and ``opts`` merged, frozen;
    the datasets it declares (``DATASETS.REGISTER_COCO_INSTANCES``) are registered."""
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    register_cfg_datasets(cfg)
    return cfg


def load_config(config_file: str, opts: Sequence[str] = ()) -> AnyConfig:
    """The config in ``config_file`` with ``opts`` applied, its declared datasets registered:
    a ``.py`` file, or a yaml file that ``LazyConfig.save`` wrote (a LazyConfig run's
    ``config.yaml``), is a LazyConfig; any other file a yaml config
    (:func:`get_solo_cfg`, frozen)."""
    if not (config_file.endswith(".py") or _is_saved_lazy_config(config_file)):
        return get_solo_cfg(config_file, opts)
    _check_lazy_overrides(opts)
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), list(opts))
    missing = [k for k in _LAZY_KEYS if k not in cfg]
    if missing:
        raise ValueError(
            f"{config_file} defines no {missing}: a solo_d2 LazyConfig defines model, "
            "dataloader, train (and optimizer, lr_multiplier to train), as configs/*.py do"
        )
    register_datasets(cfg)
    return cfg


def register_datasets(cfg: AnyConfig) -> None:
    """Register the COCO json files the config declares (yaml
    DATASETS.REGISTER_COCO_INSTANCES and REGISTER_COCO_PANOPTIC, LazyConfig
    ``dataloader.register_coco_instances`` and ``dataloader.register_coco_panoptic``)."""
    if not is_lazy(cfg):
        register_cfg_datasets(cfg)
        return
    for key, register in ((LAZY_REGISTER_KEY, register_coco_datasets),
                          (LAZY_PANOPTIC_KEY, register_panoptic_datasets)):
        entries = OmegaConf.select(cfg, key, default=None)
        if entries is None:
            continue
        if isinstance(entries, (DictConfig, ListConfig)):
            entries = OmegaConf.to_container(entries, resolve=True)
        register(entries, key)


def config_device(cfg: AnyConfig) -> str:
    """MODEL.DEVICE / ``train.device``."""
    return cfg.train.device if is_lazy(cfg) else cfg.MODEL.DEVICE


def config_weights(cfg: AnyConfig) -> str:
    """The weights to load: MODEL.WEIGHTS / ``train.init_checkpoint``."""
    return cfg.train.init_checkpoint if is_lazy(cfg) else cfg.MODEL.WEIGHTS


def config_output_dir(cfg: AnyConfig) -> str:
    """OUTPUT_DIR / ``train.output_dir``."""
    return cfg.train.output_dir if is_lazy(cfg) else cfg.OUTPUT_DIR


def config_num_classes(cfg: AnyConfig) -> int:
    """The model's class count: MODEL.SOLO.NUM_CLASSES / ``model.num_classes``."""
    return cfg.model.num_classes if is_lazy(cfg) else cfg.MODEL.SOLO.NUM_CLASSES


@functools.lru_cache(maxsize=None)
def _yaml_defaults() -> CfgNode:
    cfg = get_cfg()
    add_solo_config(cfg)
    cfg.freeze()
    return cfg


def cluster_setting(cfg: AnyConfig, name: str) -> Tuple[Any, str]:
    """``(value, key)`` of a cluster setting ("preempt_signals", "heartbeat_period",
    "dead_process_timeout", "collective_timeout"): CLUSTER.<NAME> of a yaml config,
    ``train.cluster.<name>`` of a LazyConfig (the yaml default when it has none, so that a
    LazyConfig written before these settings keeps working). ``key`` is the setting as the
    config spells it, for messages."""
    if not is_lazy(cfg):
        return cfg.CLUSTER[name.upper()], f"CLUSTER.{name.upper()}"
    key = f"train.cluster.{name}"
    value = OmegaConf.select(cfg, key, default=None)
    if value is None:
        value = _yaml_defaults().CLUSTER[name.upper()]
    elif isinstance(value, ListConfig):
        value = list(value)
    return value, key


def max_bad_files(cfg: AnyConfig) -> Tuple[float, str]:
    """``(value, key)`` of the bad files a training run tolerates
    (:func:`~solo_d2.data.bad_files.bad_file_limit`): DATALOADER.MAX_BAD_FILES, a LazyConfig's
    ``dataloader.max_bad_files`` (the yaml default when it has none)."""
    if not is_lazy(cfg):
        return cfg.DATALOADER.MAX_BAD_FILES, "DATALOADER.MAX_BAD_FILES"
    key = "dataloader.max_bad_files"
    value = OmegaConf.select(cfg, key, default=None)
    return (_yaml_defaults().DATALOADER.MAX_BAD_FILES if value is None else value), key


def launch_options(cfg) -> Dict[str, Any]:
    """:func:`~solo_d2.launch.launch`'s keyword arguments from a config: the device
    (MODEL.DEVICE / ``train.device``) and the cluster settings (yaml ``CLUSTER.*``, LazyConfig
    ``train.cluster.*``; :func:`cluster_setting`)."""
    timeout, key = cluster_setting(cfg, "collective_timeout")
    if not timeout > 0:
        raise ValueError(f"{key}={timeout}: expected seconds > 0")
    return dict(
        device=config_device(cfg),
        timeout=timedelta(seconds=float(timeout)),
        heartbeat_period=float(cluster_setting(cfg, "heartbeat_period")[0]),
        dead_process_timeout=float(cluster_setting(cfg, "dead_process_timeout")[0]),
        preempt_signals=tuple(cluster_setting(cfg, "preempt_signals")[0]),
    )


def build_solo_model(cfg: AnyConfig, device: str = "") -> nn.Module:
    """The config's model, on ``device`` (default: the config's), weights not loaded: Detectron2's
    ``build_model`` for a yaml config, ``instantiate(cfg.model)`` for a LazyConfig."""
    device = device or config_device(cfg)
    if not is_lazy(cfg):
        if device != cfg.MODEL.DEVICE:
            cfg = cfg.clone()
            cfg.defrost()
            cfg.MODEL.DEVICE = device
        return build_model(cfg)
    model = instantiate(cfg.model)
    return model.to(torch.device(device))


def inference_augmentations(cfg: AnyConfig) -> List[T.Augmentation]:
    """The test loader's augmentations (its resize): what a predictor applies to an image."""
    if not is_lazy(cfg):
        return build_solo_augmentation(cfg, is_train=False)
    return list(instantiate(cfg.dataloader.test.mapper.augmentations))


def inference_augmentation(cfg: AnyConfig) -> T.Augmentation:
    """:func:`inference_augmentations` as one augmentation: the resize alone when it is the only
    one (its ``get_transform`` then works), else an AugmentationList."""
    augs = inference_augmentations(cfg)
    return augs[0] if len(augs) == 1 else T.AugmentationList(augs)


def input_format(cfg: AnyConfig) -> str:
    """The channel order the model reads, "RGB" or "BGR": INPUT.FORMAT / the test mapper's
    ``image_format``."""
    fmt = cfg.dataloader.test.mapper.image_format if is_lazy(cfg) else cfg.INPUT.FORMAT
    if fmt not in ("RGB", "BGR"):
        raise ValueError(f"the input format must be 'RGB' or 'BGR', got {fmt!r}")
    return fmt


def dataset_names(cfg: AnyConfig, split: str) -> List[str]:
    """The datasets of ``split`` ("train" or "test"): DATASETS.TRAIN / TEST, or a
    LazyConfig's ``dataloader.<split>.dataset.names`` (one name or a list)."""
    if not is_lazy(cfg):
        return list(cfg.DATASETS.TRAIN if split == "train" else cfg.DATASETS.TEST)
    names = OmegaConf.select(cfg, f"dataloader.{split}.dataset.names", default=None)
    if names is None:
        return []
    return [names] if isinstance(names, str) else list(names)
