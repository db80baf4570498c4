"""Flat views of a config: dotted keys (MLflow params), one canonical text form, and the params hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts and lists into dotted keys (`optim.lr`, `param_scheduler.0.type`)."""
    items: Iterable[tuple[Any, Any]]
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
