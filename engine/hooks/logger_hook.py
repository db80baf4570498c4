"""LoggerHook: every `interval` iterations, average the window's losses across ranks and publish the scalars."""

from __future__ import annotations

import datetime
import math
from typing import Any

import torch

from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike


class LoggerHook(Hook):
    """Publishes `train/loss` (+ each loss term), `train/lr` (+ per group), `train/momentum`, `train/grad_norm`,
    `train/time`, `train/data_time` at step = iteration, and `val/<metric>` after each validation."""

    priority = Priority.BELOW_NORMAL

    def __init__(self, interval: int = 10, ignore_last: bool = False) -> None:
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        self.interval = interval
        self.ignore_last = ignore_last
        self._sums: dict[str, float] = {}
        self._model_sums: dict[str, Any] = {}
        self._count = 0

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        # The model's outputs (losses and other logged values) stay tensors (no device sync) until the interval
        # ends; host-side values stay Python floats.
        for key, value in (outputs or {}).items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                self._model_sums[key] = self._model_sums.get(key, 0) + value.detach().float().reshape(())
        loop = runner.train_loop
        self._sums["time"] = self._sums.get("time", 0.0) + loop.iter_time
        self._sums["data_time"] = self._sums.get("data_time", 0.0) + loop.data_time
        self._sums["grad_norm"] = self._sums.get("grad_norm", 0.0) + runner.optim_wrapper.grad_norm
        self._count += 1
        step = runner.iter + 1
        last = step == runner.max_iters and not self.ignore_last
        if step % self.interval == 0 or last:
            self._publish(runner, step)

    def _publish(self, runner: Any, step: int) -> None:
        means = {k: v / self._count for k, v in self._sums.items()}
        model_means = {k: v / self._count for k, v in self._model_sums.items()}
        if model_means:  # logged values are the mean over ranks, not rank 0's
            keys = sorted(model_means)
            stacked = runner.accelerator.reduce(
                torch.stack([model_means[k] for k in keys]).to(runner.accelerator.device), reduction="mean")
            model_means = dict(zip(keys, stacked.cpu().tolist(), strict=True))
        scalars = {f"train/{k}": float(v) for k, v in model_means.items()}
        scalars.update({f"train/{k}": v for k, v in runner.optim_wrapper.get_lr().items()})
        momentum = runner.optim_wrapper.get_momentum()
        if momentum is not None:
            scalars["train/momentum"] = momentum
        scalars["train/grad_norm"] = float(means.pop("grad_norm"))
        scalars["train/time"] = float(means["time"])
        scalars["train/data_time"] = float(means["data_time"])
        if runner.optim_wrapper.skipped_steps:
            scalars["train/skipped_steps"] = float(runner.optim_wrapper.skipped_steps)
        runner.log_scalars(scalars, step)
        if runner.is_main_process:
            eta = runner.train_loop.eta_seconds()
            eta_text = f"  eta: {datetime.timedelta(seconds=round(eta))}" if math.isfinite(eta) else ""
            shown = "  ".join(f"{k[6:]}: {v:.4g}" if "lr" not in k else f"{k[6:]}: {v:.4e}"
                              for k, v in scalars.items() if "/lr/" not in k and not math.isnan(v))
            runner.logger.info("Iter(train) [%*d/%d]  %s%s", len(str(runner.max_iters)), step, runner.max_iters,
                               shown, eta_text)
        self._sums, self._model_sums, self._count = {}, {}, 0

    def after_val_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        metrics = metrics or {}
        scalars = {f"val/{k}": float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        runner.log_scalars(scalars, runner.iter)
        if runner.is_main_process:
            runner.logger.info("Iter(val)   [%d]  %s", runner.iter, _shown(runner.headline(metrics)))

    def after_test_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        if runner.is_main_process:
            runner.logger.info("Test  %s", _shown(runner.headline(metrics or {})))


def _shown(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}: {v:.4g}" for k, v in metrics.items())
