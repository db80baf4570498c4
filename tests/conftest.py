"""Shared fixtures: params files derived from the shipped params.yaml."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "params.yaml"
DELETE = object()  # an override value that removes the key


def shipped_params() -> dict[str, Any]:
    """The shipped params.yaml, loaded the way the engine loads it."""
    from engine.config import load_params

    return load_params(SHIPPED)


def apply_overrides(params: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Nested override: mappings merge (`_delete_: true` replaces), anything else (lists too) replaces, DELETE
    removes the key."""
    out = copy.deepcopy(params)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and value.get("_delete_"):
            out[key] = {k: copy.deepcopy(v) for k, v in value.items() if k != "_delete_"}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = apply_overrides(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture
def write_params(tmp_path: Path) -> Callable[..., Path]:
    """`write_params(overrides=None, name="params.yaml")`: the shipped params with overrides, written under tmp_path."""

    from engine.config import dump_yaml

    def write(overrides: dict[str, Any] | None = None, name: str = "params.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        params = apply_overrides(shipped_params(), overrides or {})
        path.write_text(dump_yaml(params), encoding="utf-8")
        return path

    return write
