"""Safe reader of mmdet python config files: it parses them with python's ``ast`` and never
executes them.

Read are literals, ``dict(...)`` / ``list(...)`` / ``tuple(...)`` / ``set(...)`` calls, names bound
earlier in the file, arithmetic, subscripts and ``{{_base_.x}}`` references; ``_base_``
inheritance follows mmengine's dict-merge semantics, ``_delete_=True`` included. Anything else
(other calls, ``read_base`` "pure python" configs, other statements) is an
:class:`~.errors.MMDetConversionError` naming its line.
"""
import ast
import copy
import os
import re
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

from .errors import MMDetConversionError

__all__ = ["parse_mmdet_config", "load_mmdet_config_file", "merge_config_dicts"]

_BASE_REF = "__solo_d2_base_ref__"
_BASE_REF_RE = re.compile(r"\{\{\s*_base_\.([A-Za-z_][\w.]*)\s*\}\}")
_ALLOWED_CALLS = {"dict": dict, "list": list, "tuple": tuple, "set": set}
_BINOPS: Dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.FloorDiv: lambda a, b: a // b,
    ast.Mod: lambda a, b: a % b,
    ast.Pow: lambda a, b: a**b,
}


class _SafeEvaluator:
    """Evaluates the expression subset that mmdet configs use; anything else is an error."""

    def __init__(self, names: Dict[str, Any], source: str):
        self.names = names
        self.source = source

    def fail(self, node: ast.AST, what: str) -> NoReturn:
        line = getattr(node, "lineno", "?")
        raise MMDetConversionError(
            f"mmdet config {self.source}: unsupported {what} at line {line} "
            f"({ast.dump(node)[:80]}...); only literals, dict(...), names and arithmetic are read"
        )

    def __call__(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = []
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    items.extend(self(e.value))
                else:
                    items.append(self(e))
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    out.update(self(v))
                else:
                    out[self(k)] = self(v)
            return out
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise MMDetConversionError(
                    f"mmdet config {self.source}: name {node.id!r} at line {node.lineno} is not "
                    "defined earlier in the config"
                )
            return self.names[node.id]
        if isinstance(node, ast.Attribute):
            base = self(node.value)
            if isinstance(base, dict) and node.attr in base:
                return base[node.attr]
            self.fail(node, f"attribute {node.attr!r}")
        if isinstance(node, ast.Subscript):
            return self(node.value)[self(node.slice)]
        if isinstance(node, ast.UnaryOp):
            v = self(node.operand)
            if isinstance(node.op, ast.USub):
                return -v
            if isinstance(node.op, ast.UAdd):
                return +v
            if isinstance(node.op, ast.Not):
                return not v
            self.fail(node, "unary operator")
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](self(node.left), self(node.right))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _ALLOWED_CALLS:
                self.fail(node, "call")
            fn = _ALLOWED_CALLS[node.func.id]
            args = [self(a) for a in node.args]
            if fn is dict:
                out = dict(*args)
                for kw in node.keywords:
                    if kw.arg is None:  # dict(**other)
                        out.update(self(kw.value))
                    else:
                        out[kw.arg] = self(kw.value)
                return out
            if node.keywords:
                self.fail(node, "keyword arguments")
            return fn(*args)
        self.fail(node, "expression")


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_to_plain(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_to_plain(v) for v in x)
    return x


def parse_mmdet_config(
    text: str, source: str = "<config text>", base_vars: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Top-level variables of an mmdet config given as python text, read without executing it.

    ``{{_base_.x}}`` references are resolved against ``base_vars`` (the merged ``_base_``
    configs). Imports are ignored; any other statement kind is an error naming its line.
    """
    text = _BASE_REF_RE.sub(lambda m: f"{_BASE_REF}.{m.group(1)}", text)
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as e:
        raise MMDetConversionError(f"mmdet config {source} is not valid python: {e}") from e
    names: Dict[str, Any] = {_BASE_REF: base_vars or {}}
    ev = _SafeEvaluator(names, source)
    out: Dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in stmt.names]
            if isinstance(stmt, ast.ImportFrom) and "read_base" in mods:
                raise MMDetConversionError(
                    f"mmdet config {source} is a 'pure python' (read_base) config, which this "
                    "converter does not read; pass a classic text config with --mmdet-config"
                )
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring
        if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if stmt.value is None:
                continue
            value = ev(stmt.value)
            for t in targets:
                if not isinstance(t, ast.Name):
                    ev.fail(t, "assignment target")
                names[t.id] = value
                out[t.id] = value
            continue
        ev.fail(stmt, f"statement {type(stmt).__name__}")
    return _to_plain(out)


def merge_config_dicts(base: Dict[str, Any], child: Dict[str, Any]) -> Dict[str, Any]:
    """mmengine's merge: child dicts merge into base dicts key by key unless they carry
    ``_delete_=True`` (then they replace); every other value replaces. Returns a new dict."""
    out = copy.deepcopy(base)
    for k, v in child.items():
        if isinstance(v, dict):
            v = dict(v)
            delete = v.pop("_delete_", False)
            if not delete and isinstance(out.get(k), dict):
                out[k] = merge_config_dicts(out[k], v)
            else:
                out[k] = merge_config_dicts({}, v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _strip_delete(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _strip_delete(v) for k, v in x.items() if k != "_delete_"}
    if isinstance(x, list):
        return [_strip_delete(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_strip_delete(v) for v in x)
    return x


def load_mmdet_config_file(path: str, _seen: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Read an mmdet ``.py`` config file and its ``_base_`` files (relative to it), safely."""
    path = os.path.abspath(path)
    if path in _seen:
        raise MMDetConversionError(f"mmdet config {path}: circular _base_ chain {_seen}")
    if not os.path.isfile(path):
        raise MMDetConversionError(f"mmdet config file {path} does not exist")
    if not path.endswith(".py"):
        raise MMDetConversionError(f"mmdet config {path}: only .py configs are supported")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tree = ast.parse(text, filename=path)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError) as e:
        raise MMDetConversionError(f"mmdet config {path}: cannot be read as python ({e})") from e
    # First pass: only the _base_ list (it must be a literal).
    bases: List[str] = []
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == "_base_"
        ):
            value = _SafeEvaluator({}, path)(stmt.value)
            bases = [value] if isinstance(value, str) else list(value)
    merged: Dict[str, Any] = {}
    for b in bases:
        bpath = os.path.join(os.path.dirname(path), b)
        merged = merge_config_dicts(merged, load_mmdet_config_file(bpath, _seen + (path,)))
    own = parse_mmdet_config(text, source=path, base_vars=merged)
    own.pop("_base_", None)
    return _strip_delete(merge_config_dicts(merged, own))

