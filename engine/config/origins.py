"""The resolved config as YAML with, after every value, the file that set it (`trainline check --print --origin`)."""

from __future__ import annotations

from typing import Any

from engine.config.yaml_io import Origins, flow_yaml

DEFAULT = "default"  # a value no file set: the engine's default (docs/config.md)


def origin_of(origins: Origins, path: tuple[str, ...]) -> str:
    """Who set the value at `path`: the file recorded for it or for a mapping/list above it, else the default."""
    for end in range(len(path), 0, -1):
        if path[:end] in origins:
            return origins[path[:end]]
    return DEFAULT


def dump_with_origins(cfg: dict[str, Any], origins: Origins) -> str:
    """YAML text of `cfg` (it reads back as `cfg`) with a trailing `# from FILE` on each value's line."""
    lines: list[str] = []
    _emit(cfg, (), 0, origins, lines)
    return "\n".join(lines) + "\n"


def _emit(node: dict[str, Any], prefix: tuple[str, ...], depth: int, origins: Origins, lines: list[str]) -> None:
    indent = "  " * depth
    for key, value in node.items():
        path = prefix + (str(key),)
        name = flow_yaml(key)
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{name}:")
            _emit(value, path, depth + 1, origins, lines)
        else:
            # Lists and empty mappings are one value each: a list replaces a base's list as a whole.
            lines.append(f"{indent}{name}: {flow_yaml(value)}  # from {origin_of(origins, path)}")

