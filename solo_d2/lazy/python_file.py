"""A LazyConfig written as a Python config file that ``LazyConfig.load`` reads back.

Detectron2's ``LazyConfig.save`` writes yaml; a ``.py`` is what users edit and what
``train_net.py --config-file`` and ``solo_d2.model_zoo`` expect next to the shipped recipes.
Every ``L(target)(...)`` node becomes the same call in Python (its target imported by the
shortest path that names it), dicts become ``dict(...)``, lists and plain values their repr;
interpolations (``"${..lr}"``) stay strings, as in configs/*.py.
"""
import keyword
import os
from typing import Any, Dict, List

from detectron2.utils.registry import _convert_target_to_string, locate
from omegaconf import DictConfig, OmegaConf

from ..utils.file_io import atomic_write

__all__ = ["lazy_config_source", "save_lazy_config"]

_INDENT = "    "
_PLAIN = (bool, int, float, str, type(None))


class _Imports:
    """The import lines for the targets, one local name per object."""

    def __init__(self):
        self.names: Dict[str, str] = {}  # local name -> "module:name" it stands for

    def name_of(self, target: Any) -> str:
        """The expression naming ``target`` in the file (importing what it needs)."""
        path = target if isinstance(target, str) else _convert_target_to_string(target)
        obj = locate(path)
        qualname = getattr(obj, "__qualname__", "")
        if not qualname or not path.endswith("." + qualname):
            qualname = path.rsplit(".", 1)[-1]
        module = path[: -len(qualname) - 1]
        first, _, rest = qualname.partition(".")
        local = first
        while self.names.get(local, f"{module}:{first}") != f"{module}:{first}":
            local += "_"  # another object of that name is imported already
        self.names[local] = f"{module}:{first}"
        return local + ("." + rest if rest else "")

    def lines(self) -> List[str]:
        by_module: Dict[str, List[str]] = {}
        for local, ref in self.names.items():
            module, name = ref.split(":")
            by_module.setdefault(module, []).append(name if name == local else f"{name} as {local}")
        out = []
        for module, names in sorted(by_module.items()):
            line = f"from {module} import {', '.join(sorted(names))}"
            if len(line) > 99:
                line = f"from {module} import (\n" + "".join(
                    f"{_INDENT}{n},\n" for n in sorted(names)) + ")"
            out.append(line)
        return out


def _expr(value: Any, imports: _Imports, depth: int) -> str:
    """``value`` (plain dicts, lists and values of ``OmegaConf.to_container``) as Python."""
    pad, inner = _INDENT * depth, _INDENT * (depth + 1)
    if isinstance(value, dict):
        items = dict(value)
        target = items.pop("_target_", None)
        for k in items:
            if not (isinstance(k, str) and k.isidentifier() and not keyword.iskeyword(k)):
                raise ValueError(f"key {k!r} is not a Python name: cannot write it as an argument")
        head = f"L({imports.name_of(target)})(" if target is not None else "dict("
        if not items:
            return head + ")"
        args = "".join(f"{inner}{k}={_expr(v, imports, depth + 1)},\n" for k, v in items.items())
        return f"{head}\n{args}{pad})"
    if isinstance(value, (list, tuple)):
        parts = [_expr(v, imports, depth + 1) for v in value]
        one_line = "[" + ", ".join(parts) + "]"
        if "\n" not in one_line and len(one_line) + len(pad) < 80:
            return one_line
        return "[\n" + "".join(f"{inner}{p},\n" for p in parts) + f"{pad}]"
    if isinstance(value, _PLAIN):
        return repr(value)
    raise ValueError(f"a {type(value).__name__} value ({value!r}) cannot be written as Python "
                     "config text")


def lazy_config_source(cfg: DictConfig, header: str = "") -> str:
    """Python source that ``LazyConfig.load`` turns back into ``cfg`` (its top-level keys
    as variables, in order), with ``header`` as the module docstring."""
    imports = _Imports()
    plain = OmegaConf.to_container(cfg, resolve=False)  # interpolations stay strings
    body = [f"{key} = {_expr(value, imports, 0)}" for key, value in plain.items()]
    lines = []
    if header:
        lines.append('"""' + header.replace('"""', "'''").strip() + '\n"""')
    lines.append("from detectron2.config import LazyCall as L")
    lines += imports.lines()
    return "\n".join(lines) + "\n\n" + "\n\n".join(body) + "\n"


def save_lazy_config(cfg: DictConfig, path: str, header: str = "") -> str:
    """Write :func:`lazy_config_source` to ``path`` (atomically); returns the path."""
    source = lazy_config_source(cfg, header)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    atomic_write(path, lambda f: f.write(source.encode()))
    return path
