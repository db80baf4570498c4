"""Load params.yaml: YAML-1.2 numbers, `_base_` inheritance with `_delete_`, flattening and hashing."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import UserError


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads YAML-1.2 floats (`6e-05`, `1e3`) as numbers.

    PyYAML follows YAML 1.1, where a float needs a dot, so the `6e-05` that `dvc exp run -S optim.lr=6e-5` writes
    would arrive as a string and reach the optimizer as one.
    """


_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in list(_Loader.yaml_implicit_resolvers):
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers[_first] if tag != "tag:yaml.org,2002:float"
    ]
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with YAML-1.2 number rules; a syntax error names the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file, resolving `_base_` (a path or list of paths, relative to the file) recursively."""
    return _load(Path(path), seen=())


def _load(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected a params YAML file; pass --params PATH)")
    resolved = path.resolve()
    if resolved in seen:
        raise UserError(f"{path}: `_base_` includes itself (cycle through {', '.join(str(p) for p in seen)})")
    cfg = parse_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: top level must be a mapping of sections, got {type(cfg).__name__}")
    bases = cfg.pop("_base_", None)
    if bases is None:
        return cfg
    if isinstance(bases, str):
        bases = [bases]
    merged: dict[str, Any] = {}
    for base in bases:
        base_cfg = _load(path.parent / base, seen + (resolved,))
        clash = set(merged) & set(base_cfg)
        if clash:
            raise UserError(f"{path}: `_base_` files define the same top-level key(s) {sorted(clash)}")
        merged.update(base_cfg)
    return merge(cfg, merged)


def merge(child: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Merge `child` into `base` as MMEngine does: dicts merge, other values (lists too) replace; `_delete_` drops."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if isinstance(value, dict) and value.get("_delete_"):
            out[key] = {k: v for k, v in value.items() if k != "_delete_"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(value, out[key])
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts and lists into dotted keys (`optim.lr`, `param_scheduler.0.type`)."""
    if isinstance(cfg, dict):
        items = cfg.items()
    elif isinstance(cfg, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(cfg))
    else:
        return {prefix: cfg}
    out: dict[str, Any] = {}
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, (dict, list, tuple)) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def canonical_json(cfg: Any) -> str:
    """One canonical text form of a config (sorted keys, repr floats): the basis of hashes and logged params."""
    return json.dumps(cfg, sort_keys=True, separators=(",", ":"), default=str)


def params_hash(cfg: dict[str, Any], sections: tuple[str, ...]) -> str:
    """Short hash of the given sections: identifies 'the same training' for resume and for tracking tags."""
    subset = {k: cfg.get(k) for k in sections}
    return hashlib.sha256(canonical_json(subset).encode()).hexdigest()[:16]
