"""ProgressOutputsHook: rewrite the files DVC shows (metrics, plots) after every validation, not only at the end."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike

logger = logging.getLogger("trainline")


class ProgressOutputsHook(Hook):
    """After each validation the main process calls `write(runner, val_metrics)` (the train stage passes the writer
    of metrics/train.json, plots/train.csv and plots/val.csv, each written atomically), so `dvc exp show` and
    `dvc plots show` on a running experiment show where it is. Runs after the LoggerHook has put the validation into
    the history. A write that fails is warned about once and training goes on; the end of the stage writes the
    same files again and does not forgive a failure."""

    priority = Priority.LOW

    def __init__(self, write: Callable[[RunnerLike, dict[str, float]], None]) -> None:
        self.write = write
        self._warned = False

    def after_val_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        if runner.mode != "train" or not runner.is_main_process:
            return
        try:
            self.write(runner, dict(metrics or {}))
        except OSError as exc:
            if not self._warned:
                self._warned = True
                logger.warning("could not update the DVC progress files (%s); training continues", exc)

    def state_dict(self) -> dict[str, Any]:
        return {}
