"""Turn a `type:` name into a class: built-ins by short name, then torch, then a dotted import path."""

from __future__ import annotations

import importlib

from engine.suggest import did_you_mean


def _builtins(kind: str) -> dict[str, type]:
    # Imports stay inside the branches so `trainline --help` and `trainline check` load only what they need.
    if kind == "model":
        from engine.seg.models import MODELS

        return dict(MODELS)
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

        return dict(HOOKS)
    raise KeyError(kind)


def builtin_names(kind: str) -> list[str]:
    """Sorted short names available for a kind (for error messages and docs)."""
    return sorted(_builtins(kind))


def resolve_type(name: object, kind: str) -> type:
    """Resolve `name` for `kind`; raises LookupError whose message lists what exists (callers add the key path)."""
    if isinstance(name, type):
        return name
    if not isinstance(name, str) or not name:
        raise LookupError(f"must be a type name string, got {name!r}")
    table = _builtins(kind)
    if name in table:
        return table[name]
    if "." in name:
        module_name, _, attr = name.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise LookupError(f"{name!r}: cannot import module {module_name!r} ({exc})") from None
        obj = getattr(module, attr, None)
        if not isinstance(obj, type):
            raise LookupError(f"{name!r}: module {module_name!r} has no class {attr!r}")
        return obj
    hint = did_you_mean(name, table)
    shown = ", ".join(sorted(table)) if len(table) <= 20 else ", ".join(sorted(table)[:20]) + ", ..."
    raise LookupError(f"unknown type {name!r}{hint}; available: {shown}; or a dotted path like 'my_pkg.module.Class'")
