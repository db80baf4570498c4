"""Turn a `type:` name into a class or callable: short names from the catalog, then torch, then a dotted path.

The tables come from the callers' kinds; only the kind asked for is imported, so `trainline --help` and
`trainline check` load no more than the config names.
"""

from __future__ import annotations

import importlib
from typing import Any

from engine.suggest import did_you_mean

# Components a task package contributes by short name (dotted paths, imported on use).
_TASK_TABLES = ("engine.seg.components",)
TASK_KINDS = ("model", "dataset", "evaluator", "prepare")


def task_observing_hooks() -> frozenset[str]:
    """The hook names task packages declare as only observing training (their `OBSERVING_HOOKS`)."""
    return frozenset(name for module in _TASK_TABLES
                     for name in getattr(importlib.import_module(module), "OBSERVING_HOOKS", ()))


def _builtins(kind: str) -> dict[str, Any]:
    if kind in TASK_KINDS:
        table: dict[str, Any] = {}
        for module in _TASK_TABLES:
            table.update(importlib.import_module(module).COMPONENTS.get(kind, {}))
        return table
    if kind == "optimizer":
        import torch.optim

        return {
            name: obj
            for name, obj in vars(torch.optim).items()
            if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and obj is not torch.optim.Optimizer
        }
    if kind == "optim_wrapper":
        from engine.optim.wrapper import WRAPPERS

        return dict(WRAPPERS)
    if kind == "scheduler":
        from engine.optim.schedulers import SCHEDULERS

        return dict(SCHEDULERS)
    if kind == "train_loop":
        from engine.loops import TRAIN_LOOPS

        return dict(TRAIN_LOOPS)
    if kind in ("val_loop", "test_loop"):
        from engine.loops import TestLoop, ValLoop

        return {"ValLoop": ValLoop} if kind == "val_loop" else {"TestLoop": TestLoop}
    if kind == "hook":
        from engine.hooks import HOOKS

        hooks: dict[str, Any] = dict(HOOKS)
        for module in _TASK_TABLES:  # a task's own hooks (the example's SegVisualizationHook), by dotted path
            hooks.update(importlib.import_module(module).COMPONENTS.get("hook", {}))
        return hooks
    if kind == "collate_fn":
        return {}
    raise KeyError(kind)


def builtin_names(kind: str) -> list[str]:
    """Sorted short names available for a kind (for error messages and docs)."""
    return sorted(_builtins(kind))


def _import(name: str) -> Any:
    module_name, _, attr = name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"{name!r}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: say where, not a traceback
        raise LookupError(f"{name!r}: importing module {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    if not hasattr(module, attr):
        raise LookupError(f"{name!r}: module {module_name!r} has no attribute {attr!r}"
                          f"{did_you_mean(attr, [n for n in dir(module) if not n.startswith('_')])}")
    return getattr(module, attr)


def resolve_type(name: object, kind: str) -> Any:
    """Resolve `name` for `kind`; raises LookupError whose message lists what exists (callers add the key path)."""
    if isinstance(name, type) or (callable(name) and not isinstance(name, str)):
        return name
    if not isinstance(name, str) or not name:
        raise LookupError(f"must be a type name string, got {name!r}")
    table = _builtins(kind)
    found = table.get(name)
    if isinstance(found, str):
        found = _import(found)
    if found is None and "." in name:
        found = _import(name)
    if found is None:
        hint = did_you_mean(name, table)
        shown = ", ".join(sorted(table)) if len(table) <= 20 else ", ".join(sorted(table)[:20]) + ", ..."
        available = f"available: {shown}; or " if table else "use "
        raise LookupError(f"unknown type {name!r}{hint}; {available}a dotted path like 'my_pkg.module.Class'")
    if not callable(found):
        raise LookupError(f"{name!r} is not a class or function")
    return found
