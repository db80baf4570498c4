"""IterTimerHook: per-iteration `time` and `data_time`, and an ETA that stays right after a resume."""

from __future__ import annotations

import time
from typing import Any

from engine.hooks.hook import Hook, Priority


class IterTimerHook(Hook):
    """Writes `train/time`, `train/data_time` and `eta_seconds` into `runner.iter_scalars` for the logger."""

    priority = Priority.NORMAL

    def __init__(self) -> None:
        self._last = 0.0
        self._start = 0.0
        self._start_iter = 0
        self.data_time = 0.0

    def before_train(self, runner: Any) -> None:
        self._start = self._last = time.perf_counter()
        self._start_iter = runner.iter  # after a resume, ETA averages only the iterations this process ran

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.data_time = time.perf_counter() - self._last

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        now = time.perf_counter()
        done = runner.iter + 1 - self._start_iter
        runner.iter_scalars["train/time"] = now - self._last
        runner.iter_scalars["train/data_time"] = self.data_time
        runner.iter_scalars["eta_seconds"] = (now - self._start) / done * (runner.max_iters - runner.iter - 1)
        self._last = now
