"""EarlyStoppingHook: stop training when a validation metric has stopped improving."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from engine.errors import UserError
from engine.hooks.hook import Hook, Priority

# MMEngine's keys (shared with CheckpointHook's save_best): exact name first, then substring, case-insensitive.
GREATER_KEYS = ("acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU", "mAcc", "aAcc")
LESS_KEYS = ("loss",)


def infer_rule(monitor: str, greater_keys: Sequence[str] = GREATER_KEYS,
               less_keys: Sequence[str] = LESS_KEYS) -> str | None:
    """'greater' or 'less' is better for `monitor`, as MMEngine infers it; None when the name says neither."""
    name = monitor.lower()
    greater, less = {k.lower() for k in greater_keys}, {k.lower() for k in less_keys}
    if name in greater:
        return "greater"
    if name in less:
        return "less"
    if any(k in name for k in greater):
        return "greater"
    if any(k in name for k in less):
        return "less"
    return None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class EarlyStoppingHook(Hook):
    """MMEngine's EarlyStoppingHook. After each validation: a non-finite score stops (`check_finite`); a score past
    `stopping_threshold` stops; a score that does not beat the best by `min_delta` (reaching best + min_delta counts
    as beating it) adds one to the wait count, and `patience` such validations in a row stop; any other score becomes
    the best and resets the count. Stopping sets `train_loop.stop_training`, which both train loops check before the
    next iteration. Runs last (LOWEST), after every hook that reads the validation.

    Unlike MMEngine the best score and wait count are checkpointed, so a resumed run stops where an uninterrupted one
    would.
    """

    priority = Priority.LOWEST

    def __init__(self, monitor: str, rule: str | None = None, patience: int = 5, min_delta: float = 0.1,
                 strict: bool = False, check_finite: bool = True, stopping_threshold: float | None = None) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must be the name of a validation metric, got {monitor!r}")
        if rule is None:
            rule = infer_rule(monitor)
            if rule is None:
                raise ValueError(f"monitor {monitor!r}: cannot tell whether larger or smaller is better (larger for "
                                 f"names containing {', '.join(GREATER_KEYS)}; smaller for loss); set rule: greater "
                                 f"or less")
        elif rule not in ("greater", "less"):
            raise ValueError(f"rule must be 'greater' or 'less', got {rule!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a whole number >= 1 (validations without improvement), got "
                             f"{patience!r}")
        if not _number(min_delta) or min_delta < 0:
            raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")
        if stopping_threshold is not None and not _number(stopping_threshold):
            raise ValueError(f"stopping_threshold must be a number or null, got {stopping_threshold!r}")
        for name, value in (("strict", strict), ("check_finite", check_finite)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        self.monitor = monitor
        self.rule = rule
        self.patience = patience
        self.min_delta = float(min_delta) if rule == "greater" else -float(min_delta)
        self.strict = strict
        self.check_finite = check_finite
        self.stopping_threshold = stopping_threshold
        self._better = operator.gt if rule == "greater" else operator.lt
        self.best_score = -math.inf if rule == "greater" else math.inf
        self.wait_count = 0
        self._warned = False

    def check(self, score: float) -> str | None:
        """Update the best score and wait count with `score`; why training should stop, or None."""
        if self.check_finite and not math.isfinite(score):
            return f"{self.monitor} = {score} is not finite; the best was {self.best_score:.4g}"
        if self.stopping_threshold is not None and self._better(score, self.stopping_threshold):
            self.best_score = score
            return f"{self.monitor} = {score:.4g} passed the stopping threshold {self.stopping_threshold}"
        if self._better(self.best_score + self.min_delta, score):
            self.wait_count += 1
            if self.wait_count >= self.patience:
                return (f"{self.monitor} did not improve by {abs(self.min_delta)} on its best {self.best_score:.4g} "
                        f"in the last {self.wait_count} validations")
            return None
        self.best_score, self.wait_count = score, 0
        return None

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        metrics = metrics or {}
        if self.monitor not in metrics:
            available = ", ".join(sorted(metrics)) or "none"
            if self.strict:
                raise UserError(f"EarlyStoppingHook: the validation reported no {self.monitor!r} to monitor "
                                f"(it reports {available}); fix monitor or set strict: false")
            if not self._warned:  # once: MMEngine warns at every validation
                self._warned = True
                runner.logger.warning("EarlyStoppingHook: no %r among the validation metrics (%s); not stopping "
                                      "early", self.monitor, available)
            return
        reason = self.check(float(metrics[self.monitor]))
        if reason is not None:
            runner.train_loop.stop_training = True
            runner.logger.info("early stopping after iteration %d: %s", runner.iter, reason)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": float(self.best_score), "wait_count": self.wait_count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score = float(state.get("best_score", self.best_score))
        self.wait_count = int(state.get("wait_count", 0))
