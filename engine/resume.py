"""Which checkpoint a training continues from: `resume: auto | false | <path>`, falling back past corrupt state.

`auto` takes the checkpoint `last_checkpoint` names; when that one is unreadable (truncated weights or state, an
empty `meta.json`, a pointer naming a missing directory) it warns naming it and takes the newest intact checkpoint
instead, so a damaged file never costs the run nor silently restarts it over good checkpoints. An explicit path is
taken as it is: unreadable or trained with other params, it is refused with the reason.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import BEST_PREFIX, POINTER, PUBLISHED, load_checkpoint
from engine.errors import UserError

logger = logging.getLogger("trainline")


@dataclass
class Loaded:
    """A checkpoint read back in full."""

    path: Path
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]
    meta: dict[str, Any]


def _unreadable(path: Path) -> tuple[Loaded | None, str]:
    """(the loaded checkpoint, '') or (None, why it cannot be used)."""
    if not path.is_dir():
        return None, "the directory is missing"
    try:
        weights, state, meta = load_checkpoint(path)
    except FileNotFoundError as exc:
        return None, f"{Path(exc.filename or '?').name} is missing"
    except json.JSONDecodeError:
        return None, "meta.json is empty or not JSON"
    except Exception as exc:  # noqa: BLE001 - any failure to read means "not intact"; the reason is reported
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'}"
    if not isinstance(meta, dict) or "iter" not in meta or not isinstance(state, dict):
        return None, "meta.json or state.pt lacks the run position"
    return Loaded(path, weights, state, meta), ""


def _position(path: Path) -> int:
    """The iteration a checkpoint directory was saved at: meta.json's `iter`, else the last number in its name (a
    damaged meta.json still sorts), else -1."""
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        if isinstance(meta, dict) and isinstance(meta.get("iter"), int):
            return int(meta["iter"])
    except (OSError, ValueError):
        pass
    numbers = re.findall(r"\d+", path.name)
    return int(numbers[-1]) if numbers else -1


def _candidates(work_dir: Path) -> list[Path]:
    """Checkpoint directories in the order a resume tries them: the pointer's target, then the regular checkpoints
    by iteration (highest first), then the best ones (`best_*`, saved without optimizer state) likewise.

    By iteration, not modification time: a best checkpoint or a copied directory can be newer on disk than the
    furthest regular checkpoint."""
    named: list[Path] = []
    pointer = work_dir / POINTER
    if pointer.is_file():
        text = pointer.read_text(encoding="utf-8").strip()
        if text:
            named.append(work_dir / text)
    others = [p for p in work_dir.iterdir()
              if p.is_dir() and not p.name.startswith(".") and p.name != PUBLISHED and p not in named]
    others.sort(key=lambda p: (not p.name.startswith(BEST_PREFIX), _position(p), p.stat().st_mtime), reverse=True)
    return named + others


def fast_forward_schedulers(schedulers: list[Any], iters: int, iters_per_epoch: int | None, skipped: int = 0) -> None:
    """Step freshly built `schedulers` to where they are after `iters` training iterations, as ParamSchedulerHook
    steps them: iteration schedulers after every iteration whose optimizer step was not skipped (`skipped` of them,
    taken as the first ones: their places are not recorded), epoch schedulers after every epoch's last iteration
    (`iters_per_epoch`; None in an iteration loop, where they never step). Schedulers driven by validation metrics
    (ReduceOnPlateau) keep their start."""
    from engine.hooks.param_scheduler_hook import step_epoch_schedulers, step_iteration_schedulers

    for i in range(iters):
        if i >= skipped:
            step_iteration_schedulers(schedulers)
        if iters_per_epoch and (i + 1) % iters_per_epoch == 0:
            step_epoch_schedulers(schedulers)


def find_resumable(work_dir: Path) -> Loaded | None:
    """The newest intact checkpoint in `work_dir` (None when there is none), warning about each unreadable one
    passed on the way; unreadable checkpoints are left in place for inspection."""
    if not work_dir.is_dir():
        return None
    bad: list[str] = []
    pointer = work_dir / POINTER
    for path in _candidates(work_dir):
        loaded, why = _unreadable(path)
        if loaded is not None:
            if bad:
                logger.warning("checkpoint %s unreadable; resuming from the newest intact one: %s",
                               "; ".join(bad), path)
            return loaded
        bad.append(f"{path} ({why})")
    if bad:
        logger.warning("no intact checkpoint in %s (%s); training starts from the beginning", work_dir,
                       "; ".join(bad))
    elif pointer.is_file():
        logger.warning("%s names no checkpoint directory; training starts from the beginning", pointer)
    return None


def load_explicit(path: Path) -> Loaded:
    """`resume: <path>`: that checkpoint directory, read in full, or a one-line refusal saying why not."""
    loaded, why = _unreadable(path)
    if loaded is None:
        raise UserError(f"resume: {path} is not a usable checkpoint directory ({why}); give a directory holding "
                        f"model.safetensors, state.pt and meta.json, or resume: auto")
    return loaded


def params_difference(saved: dict[str, Any], current: dict[str, Any], limit: int = 5) -> str:
    """`optim.lr: 0.01 -> 0.005, model.depth: 2 -> 3` for the first differing flat keys."""
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k, "<unset>") != current.get(k, "<unset>"))
    shown = [f"{k}: {saved.get(k, '<unset>')} -> {current.get(k, '<unset>')}" for k in keys[:limit]]
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(shown) + more
