"""ParamSchedulerHook: step iteration schedulers after each optimizer step, epoch ones after each epoch."""

from __future__ import annotations

from typing import Any

from engine.hooks.hook import Hook, Priority


class ParamSchedulerHook(Hook):
    """Runs after the logger (LOW), so the logged lr is the one the step used; a step the fp16 loss scaler skipped
    does not advance the schedules (MMEngine advances them anyway)."""

    priority = Priority.LOW

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if not runner.optim_wrapper.step_was_skipped:
            step_iteration_schedulers(runner.schedulers)

    def after_train_epoch(self, runner: Any) -> None:
        if runner.train_loop.by_epoch:
            step_epoch_schedulers(runner.schedulers)

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        for scheduler in runner.schedulers:
            if _needs_metrics(scheduler):
                scheduler.step(metrics or {})


def step_iteration_schedulers(schedulers: list[Any]) -> None:
    """What one optimizer step does to the schedules (also replayed by the schedule simulation and a resume that
    fast-forwards schedulers)."""
    for scheduler in schedulers:
        if not scheduler.by_epoch:
            scheduler.step()


def step_epoch_schedulers(schedulers: list[Any]) -> None:
    """What the end of a training epoch does to the schedules; metric-driven ones wait for validation."""
    for scheduler in schedulers:
        if scheduler.by_epoch and not _needs_metrics(scheduler):
            scheduler.step()


def _needs_metrics(scheduler: Any) -> bool:
    return bool(getattr(scheduler, "need_val_args", False))
