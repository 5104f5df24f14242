"""Comparing what a yaml config and its LazyConfig twin build: every module's settings, the
mappers, the optimizer's parameter groups and the learning rate along the schedule."""
import numbers
from typing import Any, Dict, List, Sequence, Tuple

import torch
from detectron2.config import instantiate
from detectron2.solver import LRMultiplier
from omegaconf import DictConfig, ListConfig, OmegaConf

_SKIP = ("training",)


def plain(v: Any, depth: int = 0) -> Any:
    """A comparable form of a setting: numbers as floats, sequences as tuples, configs and
    plain objects (matchers, transforms) by their fields, tensors by shape and dtype."""
    if depth > 4:
        return type(v).__name__
    if isinstance(v, torch.Tensor):
        return ("tensor", tuple(v.shape), str(v.dtype))
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, numbers.Number):
        return float(v)
    if isinstance(v, (DictConfig, ListConfig)):
        v = OmegaConf.to_container(v, resolve=True)
    if isinstance(v, (list, tuple)):
        return tuple(plain(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((str(k), plain(x, depth + 1)) for k, x in v.items()))
    if hasattr(v, "__dict__") and not isinstance(v, (type, torch.nn.Module)) \
            and not hasattr(v, "__code__"):
        fields = {k: x for k, x in vars(v).items() if not k.startswith("__")}
        return (type(v).__name__, plain(fields, depth + 1))
    return repr(v)


def module_settings(model: torch.nn.Module) -> Dict[str, Any]:
    """{"<module>.<attribute>": setting} over every module of ``model``: its type, and each
    attribute that is not a parameter, buffer or submodule (grids, strides, thresholds,
    norms, matchers ...)."""
    out = {}
    for name, mod in model.named_modules():
        out[f"{name}.__class__"] = type(mod).__name__
        for k, v in vars(mod).items():
            if not k.startswith("_") and k not in _SKIP:
                out[f"{name}.{k}"] = plain(v)
    return out


def differences(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """{key: (a's, b's)} where the two differ."""
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def mapper_settings(mapper) -> Dict[str, Any]:
    """The settings of a DatasetMapper, its augmentations by type and fields."""
    out = {k: plain(v) for k, v in vars(mapper).items() if k != "augmentations"}
    out["augmentations"] = tuple(plain(a) for a in mapper.augmentations.augs)
    return out


def param_groups(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> List[Tuple]:
    """Each group as (parameter names, its other settings), in order; and the defaults."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for g in optimizer.param_groups:
        settings = tuple(sorted((k, plain(v)) for k, v in g.items() if k != "params"))
        groups.append((tuple(names[id(p)] for p in g["params"]), settings))
    return [type(optimizer).__name__, plain(optimizer.defaults)] + groups


def lazy_lr_scheduler(cfg: DictConfig, optimizer: torch.optim.Optimizer) -> LRMultiplier:
    """The scheduler Detectron2's LRScheduler hook makes of a LazyConfig's ``lr_multiplier``."""
    return LRMultiplier(optimizer, instantiate(cfg.lr_multiplier), cfg.train.max_iter)


def lr_factors(scheduler: LRMultiplier, iters: Sequence[int]) -> List[float]:
    """The scheduler's lr multiplier at each iteration in ``iters``."""
    return [scheduler._multiplier(i / scheduler._max_iter) for i in iters]
