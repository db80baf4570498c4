"""Params edited while `train` runs: DVC would record the new values in dvc.lock for weights trained with the old."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import UserError

# What the train stage reads: the sections that shape training (params_hash) plus the ones dvc.yaml also lists for
# train because the run's tracking and headline metrics depend on them.
WATCHED = ("mlflow", "eval.headline", "dist.num_processes", "dist.config_file")


def snapshot(params: str | Path) -> dict[str, Any]:
    """The resolved values the train stage depends on, as dotted keys (`_base_` files included)."""
    from engine.config import load_params
    from engine.config.flat import flatten
    from engine.config.schema import SECTIONS, TRAIN_SECTIONS
    from engine.config.validate import resolve

    cfg = resolve({k: v for k, v in load_params(params).items() if k in SECTIONS})
    prefixes = TRAIN_SECTIONS + WATCHED
    return {k: v for k, v in flatten(cfg).items() if any(k == p or k.startswith(f"{p}.") for p in prefixes)}


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k, ...) != after.get(k, ...))


def check_unchanged(params: str | Path, before: dict[str, Any]) -> None:
    """Raise UserError if `params` now differs from `before` in what the stage read. Called before any output is
    written, so the stage fails and DVC records nothing."""
    try:
        after = snapshot(params)
    except UserError as exc:
        raise UserError(f"{params} changed during the run and no longer loads ({str(exc).splitlines()[0]}); nothing "
                        f"was recorded: restore it and run again") from None
    changed = changed_keys(before, after)
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise UserError(f"{params} changed during the run ({shown}); the weights were trained with the old values, so "
                        f"nothing was recorded: run again to train with the new ones")
