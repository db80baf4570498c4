"""Read and write params files: YAML-1.2 numbers, `_base_` inheritance with `_delete_`, MMEngine-style merging."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from engine.errors import UserError


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML-1.2 core-schema scalars, the rules DVC's own YAML reader (ruamel) applies.

    PyYAML follows YAML 1.1, where a float needs a dot, so the `6e-05` that `dvc exp run -S optim.lr=6e-5` writes
    would arrive as a string and reach the optimizer as one. YAML 1.1's `yes`/`no`/`on`/`off` booleans, `017` octals
    and `1:30` base-60 numbers are plain strings / decimals in YAML 1.2, so they read here as `dvc exp show` shows them.
    A key given twice in one mapping is an error, as it is for DVC.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool, type(None))):
                continue  # unhashable keys are reported by the base class
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^[-+]?(?:0b[01][01_]*|0o[0-7][0-7_]*|0x[0-9a-fA-F][0-9a-fA-F_]*|[0-9][0-9_]*)$")
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_REPLACED = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _BOOL_12, list("tTfF"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_12, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    # `0o17`, `0x1f`, `0b101` by prefix; a leading zero is decimal (`017` is 17), unlike YAML 1.1.
    return sign * (int(digits, 0) if digits[:2].lower() in ("0b", "0o", "0x") else int(digits, 10))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes every string the loader above would read as something else (`'6e-5'`, `'1:30'`)."""


def _represent_str(dumper: _Dumper, data: str) -> yaml.ScalarNode:
    for tag, pattern in _Loader.yaml_implicit_resolvers.get(data[:1], []):
        if tag != "tag:yaml.org,2002:str" and pattern.match(data):
            return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """YAML text (keys in their order) that `parse_yaml` reads back as exactly `data`."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def flow_yaml(value: Any) -> str:
    """`value` on one line in YAML flow style, quoted wherever `parse_yaml` would read it as something else."""
    text = yaml.dump([value], Dumper=_Dumper, default_flow_style=True, width=2**31 - 1, allow_unicode=True,
                     sort_keys=False).strip()
    return text[1:-1]


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with YAML-1.2 number rules; a syntax error names the file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        what = str(getattr(exc, "problem", None) or exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark is not None and (mark is None or context_mark.line != mark.line):
            what += f"; {context} started at line {context_mark.line + 1}"
        raise UserError(f"{where}: not valid YAML ({what})") from None


Origins = dict[tuple[str, ...], str]  # key path -> the file that set the value there


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read a params file, resolving `_base_` (a path or list of paths, relative to the file) recursively.

    `_delete_: true` replaces what the `_base_` files hold for that key, as in MMEngine; it never removes the engine's
    defaults (a file without `_base_` still gets every default filled in).
    """
    return strip_delete(_load(Path(path), seen=())[0])


def load_params_with_origins(path: str | Path = "params.yaml") -> tuple[dict[str, Any], Origins]:
    """`load_params` plus, for every leaf value (a scalar, a list, an empty mapping), the file that set it: the
    including file when it overrides a base, a base's file otherwise (shown relative to the working directory)."""
    cfg, origins = _load(Path(path), seen=())
    return strip_delete(cfg), origins


def included_files(path: str | Path) -> list[Path]:
    """The params file and every file its `_base_` includes, recursively (each once, the including file first)."""
    out: list[Path] = []

    def visit(file: Path) -> None:
        if file.resolve() in (p.resolve() for p in out):
            return
        out.append(file)
        for base in _bases(file, _read(file)):
            visit(file.parent / base)

    _load(Path(path), seen=())  # reports a missing file or a cycle as load_params does
    visit(Path(path))
    return out


def read_as_written(path: str | Path) -> dict[str, Any]:
    """One params file's own mapping, as DVC reads it (its `_base_` not followed)."""
    return _read(Path(path))


def strip_delete(cfg: Any) -> Any:
    """`cfg` without `_delete_` flags (those left once every `_base_` has been merged have nothing to delete)."""
    if isinstance(cfg, dict):
        return {k: strip_delete(v) for k, v in cfg.items() if k != "_delete_"}
    if isinstance(cfg, list):
        return [strip_delete(v) for v in cfg]
    return cfg


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected a params YAML file; pass --params PATH)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    cfg = parse_yaml(text, str(path)) or {}
    if not isinstance(cfg, dict):
        raise UserError(f"{path}: top level must be a mapping of sections, got {type(cfg).__name__}")
    return cfg


def _bases(path: Path, cfg: dict[str, Any]) -> list[str]:
    bases = cfg.get("_base_")
    if bases is None:
        return []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise UserError(f"{path}: `_base_` must be a file path or a list of file paths, got {bases!r}")
    return bases


def _label(path: Path) -> str:
    """How an origin names a file: relative to the working directory when inside it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def _load(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], Origins]:
    if not path.is_file():
        raise UserError(f"{path}: file not found (expected a params YAML file; pass --params PATH)")
    resolved = path.resolve()
    if resolved in seen:
        raise UserError(f"{path}: `_base_` includes itself (cycle through {', '.join(str(p) for p in seen)})")
    cfg = _read(path)
    bases = _bases(path, cfg)
    cfg.pop("_base_", None)
    label = _label(path)
    if not bases:
        return cfg, _leaf_origins(cfg, (), label)
    merged: dict[str, Any] = {}
    origins: Origins = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise UserError(f"{path}: `_base_` file {base!r} not found (looked for {base_path}; "
                            f"relative paths start at the including file's folder)")
        base_cfg, base_origins = _load(base_path, seen + (resolved,))
        clash = set(merged) & set(base_cfg)
        if clash:
            raise UserError(f"{path}: `_base_` files define the same top-level key(s) {sorted(clash)}; "
                            f"each section may come from one base only")
        merged.update(base_cfg)
        origins.update(base_origins)
    _track(cfg, merged, (), origins, label)
    return merge(cfg, merged), origins


def _leaf_origins(value: Any, prefix: tuple[str, ...], label: str) -> Origins:
    """`label` for every leaf under `value` (`_delete_` flags are not values)."""
    if isinstance(value, dict):
        keys = [k for k in value if k != "_delete_"]
        if keys:
            out: Origins = {}
            for key in keys:
                out.update(_leaf_origins(value[key], prefix + (str(key),), label))
            return out
    return {prefix: label}


def _track(child: dict[str, Any], base: dict[str, Any], prefix: tuple[str, ...], origins: Origins,
           label: str) -> None:
    """Update `origins` (the base's) for merging `child` into `base`, following `merge` case by case."""
    for key, value in child.items():
        if key == "_delete_":
            continue
        path = prefix + (str(key),)
        below = isinstance(value, dict) and not value.get("_delete_") and isinstance(base.get(key), dict)
        if below and any(k != "_delete_" for k in value):
            origins.pop(path, None)  # the base's empty mapping there is no longer a leaf
            _track(value, base[key], path, origins, label)
        elif not below:  # replaced: nothing the base set below this key survives
            for old in [p for p in origins if p[:len(path)] == path]:
                del origins[old]
            origins.update(_leaf_origins(value, path, label))


def merge(child: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Merge `child` into `base` as MMEngine does: dicts merge, other values (lists too) replace; `_delete_` drops."""
    out = copy.deepcopy(base)
    for key, value in child.items():
        if key == "_delete_":
            continue  # acted on by the caller, one level up
        if isinstance(value, dict) and value.get("_delete_"):
            out[key] = merge(value, {})  # replaces the base's mapping instead of merging into it
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(value, out[key])
        elif isinstance(value, dict):
            out[key] = merge(value, {})
        else:
            out[key] = copy.deepcopy(value)
    return out
