"""CheckpointHook: save every `interval` iterations (or epochs) and at the end, keeping the newest few."""

from __future__ import annotations

import shutil
from typing import Any

from engine.hooks.hook import Hook, Priority


class CheckpointHook(Hook):
    """Runs last (VERY_LOW) so a checkpoint holds the post-step scheduler and hook states, as in MMEngine."""

    priority = Priority.VERY_LOW

    def __init__(self, interval: int = 1, by_epoch: bool | None = None, max_keep_ckpts: int = -1,
                 save_last: bool = True) -> None:
        if interval == 0 or interval < -1:
            raise ValueError(f"interval must be a positive number of steps or -1 (never), got {interval}")
        self.interval = interval
        self.by_epoch = by_epoch  # None: follow the train loop's kind
        self.max_keep_ckpts = max_keep_ckpts
        self.save_last = save_last
        self.kept: list[str] = []

    def _by_epoch(self, runner: Any) -> bool:
        return runner.train_loop.by_epoch if self.by_epoch is None else self.by_epoch

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self._by_epoch(runner):
            return
        step = runner.iter + 1
        due = self.interval > 0 and step % self.interval == 0
        if due or (self.save_last and step == runner.max_iters):
            self._save(runner, f"iter_{step}")

    def after_train_epoch(self, runner: Any) -> None:
        if not self._by_epoch(runner) or not runner.train_loop.by_epoch:
            return
        epoch = runner.epoch + 1
        due = self.interval > 0 and epoch % self.interval == 0
        if due or (self.save_last and epoch == runner.train_loop.max_epochs):
            self._save(runner, f"epoch_{epoch}")

    def _save(self, runner: Any, name: str) -> None:
        # Update the kept list first so the checkpoint's own hook state already names it.
        if name in self.kept:
            self.kept.remove(name)
        self.kept.append(name)
        drop: list[str] = []
        if self.max_keep_ckpts > 0:
            drop, self.kept = self.kept[:-self.max_keep_ckpts], self.kept[-self.max_keep_ckpts:]
        runner.save_checkpoint(name)
        if runner.is_main_process:
            for old in drop:
                shutil.rmtree(runner.work_dir / old, ignore_errors=True)

    def state_dict(self) -> dict[str, Any]:
        return {"kept": list(self.kept)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.kept = list(state.get("kept", []))
