"""Read an MMEngine Python config without executing it: its syntax tree, `_base_` files merged, base references.

MMEngine runs a `.py` config and keeps the module-level names (not `__*` names, modules or functions). We accept the
subset of Python such configs are written in and evaluate it ourselves, so importing a config runs none of its code:

* statements: `name = value` (one plain name), a docstring, `pass`; names starting with `__` are left out, and
  `_base_` (a path or a list of paths, relative to the file) is read first, whatever its position, as MMEngine does;
* values: numbers, strings, True/False/None, lists, tuples (they become lists), `{...}` and `dict(...)` (with
  `**other` unpacking), names bound earlier in the same file, `+ - * / // % **` on numbers (`+` also joins strings
  and lists), and base references: `{{_base_.a.b}}` (bare, as MMEngine's text substitution expects in `.py` files,
  or as a whole string) and the expression `_base_.a.b`;
* `{{ fileDirname }}`, `{{ fileBasename }}`, `{{ fileBasenameNoExtension }}`, `{{ fileExtname }}` in strings.

Anything else (imports, lambdas, calls other than `dict`, other attribute access, comprehensions, f-strings, `if`)
is executable code: refused with a UserError naming `file:line`. Merging follows MMEngine's `_merge_a_into_b`: dicts
merge recursively, anything else (lists too) replaces, a child dict with `_delete_=True` replaces the base's dict,
and a dict over a non-dict base value is an error; two bases defining the same top-level key is an error.
"""

from __future__ import annotations

import ast
import copy
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import UserError

BASE_KEY = "_base_"
DELETE_KEY = "_delete_"
_BASE_REF = re.compile(r"^\{\{\s*_base_\.([\w.]+)\s*\}\}$")
_BIN_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_NUMBER = (int, float)
_WHAT = {  # how refused nodes are named in messages
    ast.Import: "an import", ast.ImportFrom: "an import", ast.Lambda: "a lambda", ast.FunctionDef: "a function",
    ast.AsyncFunctionDef: "a function", ast.ClassDef: "a class", ast.ListComp: "a comprehension",
    ast.DictComp: "a comprehension", ast.SetComp: "a comprehension", ast.GeneratorExp: "a comprehension",
    ast.JoinedStr: "an f-string", ast.If: "an if statement", ast.For: "a loop", ast.While: "a loop",
    ast.With: "a with block", ast.Subscript: "a subscript", ast.Compare: "a comparison", ast.BoolOp: "and/or",
    ast.IfExp: "a conditional expression", ast.AugAssign: "an augmented assignment", ast.Try: "a try block",
}


def read_config(path: str | Path) -> dict[str, Any]:
    """The config `path` stands for: its bases merged, then its own keys over them (`_base_` removed)."""
    return _read(Path(path), ())


def _read(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    resolved = path.resolve()
    if resolved in seen:
        raise UserError(f"{path}: `_base_` includes itself (through {', '.join(str(p) for p in seen)})")
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(path))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid Python ({exc.msg})") from None
    reader = _Reader(path)
    base_cfg = reader.bases(tree, seen + (resolved,))
    own = reader.body(tree, base_cfg)
    return _strip_delete(merge_into(own, base_cfg, str(path)))


class _Reader:
    """Evaluates one file's statements; `names` holds what the file has bound so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.names: dict[str, Any] = {}
        self.base: dict[str, Any] = {}
        self.file_vars = {"fileDirname": str(path.resolve().parent), "fileBasename": path.name,
                          "fileBasenameNoExtension": path.stem, "fileExtname": path.suffix}

    def refuse(self, node: ast.AST, what: str) -> UserError:
        line = getattr(node, "lineno", "?")
        return UserError(f"{self.path}:{line}: {what}; import-mmseg reads configs without running them, so only "
                         f"assignments of literals, dict(...), names bound earlier and arithmetic are allowed")

    def bases(self, tree: ast.Module, seen: tuple[Path, ...]) -> dict[str, Any]:
        """The union of the `_base_` files (MMEngine loads them before the file's own code)."""
        node = next((s for s in tree.body if isinstance(s, ast.Assign) and len(s.targets) == 1
                     and isinstance(s.targets[0], ast.Name) and s.targets[0].id == BASE_KEY), None)
        if node is None:
            return {}
        value = self.value(node.value)
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
            raise UserError(f"{self.path}:{node.lineno}: `_base_` must be a path or a list of paths, got {value!r}")
        merged: dict[str, Any] = {}
        for rel in paths:
            if "::" in rel:
                raise UserError(f"{self.path}:{node.lineno}: `_base_` {rel!r} names a package config; copy that "
                                f"file next to this one and give its relative path")
            base_cfg = _read(self.path.parent / rel, seen)
            clash = sorted(set(merged) & set(base_cfg))
            if clash:
                raise UserError(f"{self.path}:{node.lineno}: `_base_` files define the same key(s) {clash} "
                                f"(MMEngine refuses this too)")
            merged.update(base_cfg)
        self.base = merged
        return merged

    def body(self, tree: ast.Module, base_cfg: dict[str, Any]) -> dict[str, Any]:
        for stmt in tree.body:
            if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                                              and isinstance(stmt.value.value, str)):
                continue  # docstrings and string statements do nothing
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                target, value_node = stmt.target, stmt.value
            elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                target, value_node = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.Assign):
                raise self.refuse(stmt, "an assignment to something other than one plain name")
            else:
                raise self.refuse(stmt, _WHAT.get(type(stmt), f"a {type(stmt).__name__} statement"))
            if target.id == BASE_KEY:
                continue  # read by bases()
            self.names[target.id] = self.value(value_node)
        return {k: v for k, v in self.names.items() if not k.startswith("__")}

    def value(self, node: ast.expr) -> Any:
        """The value of one expression, or a UserError naming its line."""
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return self.string(node, node.value)
            if node.value is None or isinstance(node.value, (bool, int, float)):
                return node.value
            raise self.refuse(node, f"a {type(node.value).__name__} constant")
        if isinstance(node, (ast.List, ast.Tuple)):
            if any(isinstance(e, ast.Starred) for e in node.elts):
                raise self.refuse(node, "a starred expression")
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for key, val in zip(node.keys, node.values, strict=True):
                if key is None:  # {**other, ...}
                    out.update(copy.deepcopy(self.mapping(val)))
                    continue
                k = self.value(key)
                if not isinstance(k, (str, int)):
                    raise self.refuse(key, f"a dict key of type {type(k).__name__}")
                out[k] = self.value(val)
            return out
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                hint = (f"; a base's value is `{{{{_base_.{node.id}}}}}`" if node.id in self.base else "")
                raise UserError(f"{self.path}:{node.lineno}: name {node.id!r} is not bound earlier in this file"
                                f"{hint}")
            return copy.deepcopy(self.names[node.id])
        if isinstance(node, ast.Attribute):
            return self.base_value(node, self.attribute_path(node))
        if isinstance(node, ast.Set):
            ref = self.braced_ref(node)
            if ref is None:
                raise self.refuse(node, "a set")
            return self.base_value(node, ref)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if not isinstance(operand, _NUMBER):
                raise self.refuse(node, f"a sign on a {type(operand).__name__}")
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN_OPS:
            return self.arithmetic(node)
        raise self.refuse(node, _WHAT.get(type(node), f"a {type(node).__name__} expression"))

    def string(self, node: ast.expr, text: str) -> Any:
        match = _BASE_REF.match(text)
        if match:
            return self.base_value(node, match.group(1))
        for name, value in self.file_vars.items():
            text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", value.replace("\\", "\\\\"), text)
        return text

    def mapping(self, node: ast.expr) -> dict[str, Any]:
        value = self.value(node)
        if not isinstance(value, dict):
            raise self.refuse(node, f"`**` of a {type(value).__name__}, not a dict")
        return value

    def call(self, node: ast.Call) -> dict[str, Any]:
        if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
            name = ast.unparse(node.func)
            raise self.refuse(node, f"a call of {name}(...) (only dict(...) is allowed)")
        if len(node.args) > 1 or any(isinstance(a, ast.Starred) for a in node.args):
            raise self.refuse(node, "dict(...) with positional arguments other than one dict")
        out: dict[str, Any] = copy.deepcopy(self.mapping(node.args[0])) if node.args else {}
        for kw in node.keywords:
            if kw.arg is None:
                out.update(copy.deepcopy(self.mapping(kw.value)))
            else:
                out[kw.arg] = self.value(kw.value)
        return out

    def arithmetic(self, node: ast.BinOp) -> Any:
        left, right = self.value(node.left), self.value(node.right)
        numbers = isinstance(left, _NUMBER) and isinstance(right, _NUMBER)
        joins = isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list))
        if not (numbers or joins):
            raise self.refuse(node, f"{type(node.op).__name__} of {type(left).__name__} and {type(right).__name__}")
        if isinstance(node.op, ast.Pow) and isinstance(right, _NUMBER) and abs(right) > 64:
            raise self.refuse(node, f"a power with exponent {right} (too large to be a config value)")
        try:
            return _BIN_OPS[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as exc:
            raise self.refuse(node, f"arithmetic that fails ({exc})") from None

    def attribute_path(self, node: ast.Attribute) -> str:
        parts: list[str] = []
        cur: ast.expr = node
        while isinstance(cur, ast.Attribute):
            parts.append(cur.attr)
            cur = cur.value
        if not (isinstance(cur, ast.Name) and cur.id == BASE_KEY):
            raise self.refuse(node, f"attribute access {ast.unparse(node)} (only `_base_.key` references are "
                                    f"allowed)")
        return ".".join(reversed(parts))

    def braced_ref(self, node: ast.Set) -> str | None:
        """`{{_base_.a.b}}` written bare in a .py file parses as a set holding a set holding `_base_.a.b`."""
        if len(node.elts) == 1 and isinstance(node.elts[0], ast.Set) and len(node.elts[0].elts) == 1:
            inner = node.elts[0].elts[0]
            if isinstance(inner, ast.Attribute):
                return self.attribute_path(inner)
        return None

    def base_value(self, node: ast.expr, dotted: str) -> Any:
        value: Any = self.base
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                raise UserError(f"{self.path}:{getattr(node, 'lineno', '?')}: `_base_.{dotted}`: the base files "
                                f"define no such key")
            value = value[part]
        return copy.deepcopy(value)


def merge_into(child: dict[str, Any], base: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """`child` merged into `base` as MMEngine's Config does (see the module docstring)."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if key == DELETE_KEY:
            continue
        if isinstance(value, dict) and key in out and not value.get(DELETE_KEY, False):
            if not isinstance(out[key], dict):
                raise UserError(f"{where}: {prefix}{key} is a dict here but a {type(out[key]).__name__} in the base "
                                f"config; set `_delete_=True` in it to replace the base's value")
            out[key] = merge_into(value, out[key], where, f"{prefix}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _strip_delete(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        return {k: _strip_delete(v) for k, v in cfg.items() if k != DELETE_KEY}
    if isinstance(cfg, list):
        return [_strip_delete(v) for v in cfg]
    return cfg
