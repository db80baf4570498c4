"""LoggerHook: every `interval` iterations, average the window's losses across ranks and publish the scalars; a live
progress line in a terminal, and every published record in `<work_dir>/scalars.jsonl`."""

from __future__ import annotations

import datetime
import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import torch

from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike


class LoggerHook(Hook):
    """Publishes `train/loss` (+ each loss term), `train/lr` (+ per group), `train/momentum`, `train/grad_norm`,
    `train/time`, `train/data_time`, `train/throughput` at step = iteration, and `val/<metric>` after each
    validation.

    `train/throughput` is samples per second over the logging window, all processes together: the samples every
    process trained on (see `batch_samples`) divided by this process's training time of the window (validation and
    checkpoint time are not part of an iteration's `time`)."""

    priority = Priority.BELOW_NORMAL

    def __init__(self, interval: int = 10, ignore_last: bool = False, log_metric_by_epoch: bool = False,
                 progress_bar: str | bool = "auto", json_log: bool = True) -> None:
        if interval < 1:
            raise ValueError(f"interval must be at least 1, got {interval}")
        if progress_bar not in ("auto", True, False):
            raise ValueError(f"progress_bar must be auto, true or false, got {progress_bar!r}")
        self.interval = interval
        self.ignore_last = ignore_last
        # MMEngine's default is true; here the metrics share the iteration axis unless asked (curves line up).
        self.log_metric_by_epoch = log_metric_by_epoch
        self.progress_bar = progress_bar
        self.json_log = json_log
        self.stream: TextIO = sys.stderr
        self._bar_shown = False
        self._sums: dict[str, float] = {}
        self._model_sums: dict[str, Any] = {}
        self._count = 0
        self._foreign = False  # whether _model_sums holds a checkpoint's tensors (see _adopt)
        self._last: dict[str, float] = {}

    # -- the partial interval window is part of a checkpoint, so a resume logs the same means -----------------------
    def state_dict(self) -> dict[str, Any]:
        return {"sums": {k: float(v) for k, v in self._sums.items()}, "count": self._count,
                # copies: the sums are added to in place after the checkpoint is taken
                "model_sums": {k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v
                               for k, v in self._model_sums.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sums = {k: float(v) for k, v in state.get("sums", {}).items()}
        self._count = int(state.get("count", 0))
        self._model_sums = dict(state.get("model_sums", {}))
        self._foreign = bool(self._model_sums)

    def before_run(self, runner: RunnerLike) -> None:
        if runner.mode == "train":
            runner.add_scalar_sink(lambda scalars, step: self._write_json(runner, scalars, step))

    def after_load_checkpoint(self, runner: RunnerLike, checkpoint: dict[str, Any]) -> None:
        """The log restarts from the checkpoint's history: steps the killed run logged after it are not repeated."""
        if self.json_log and runner.is_main_process:
            path = self._json_path(runner)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in runner.history), encoding="utf-8")
            tmp.replace(path)

    @staticmethod
    def _json_path(runner: RunnerLike) -> Path:
        return runner.work_dir / "scalars.jsonl"

    def _write_json(self, runner: RunnerLike, scalars: dict[str, float], step: int) -> None:
        if self.json_log and runner.is_main_process:
            runner.work_dir.mkdir(parents=True, exist_ok=True)
            with self._json_path(runner).open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": int(step), **scalars}) + "\n")

    def _bar_enabled(self, runner: RunnerLike) -> bool:
        if not runner.is_main_process or self.progress_bar is False:
            return False
        return self.progress_bar is True or bool(getattr(self.stream, "isatty", lambda: False)())

    def _draw_bar(self, runner: Any, step: int) -> None:
        """One self-overwriting line: iteration, loss, lr, ETA (terminals only; logs get the interval lines)."""
        eta = runner.train_loop.eta_seconds()
        parts = [f"[{step:>{len(str(runner.max_iters))}}/{runner.max_iters}]"]
        width = 24
        done = int(width * step / max(runner.max_iters, 1))
        parts.insert(0, "|" + "#" * done + "-" * (width - done) + "|")
        for key in ("train/loss", "train/lr"):
            if key in self._last:
                parts.append(f"{key[6:]} {self._last[key]:.4g}")
        if math.isfinite(eta):
            parts.append(f"eta {datetime.timedelta(seconds=round(eta))}")
        self.stream.write("\r\033[K" + "  ".join(parts))
        self.stream.flush()
        self._bar_shown = True

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._bar_shown = False

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        # The model's outputs (losses and other logged values) stay tensors (no device sync) until the interval
        # ends; host-side values stay Python floats. A window's sums are tensors of this hook's own, added to in
        # place (the same float additions in the same order as `sum + value`, without a new tensor a step).
        if outputs:
            if self._foreign:  # a resumed partial window: the checkpoint's CPU tensors, moved to the values' device
                self._adopt(outputs)
            sums = self._model_sums
            for key, value in outputs.items():
                if not isinstance(value, torch.Tensor) or value.numel() != 1:
                    continue
                held = sums.get(key)
                if held is None:
                    sums[key] = value.detach().float().reshape(()) + 0  # a new tensor (never the caller's)
                elif (isinstance(held, torch.Tensor) and value.dim() == 0 and value.dtype is held.dtype
                      and not value.requires_grad):
                    held.add_(value)
                else:
                    sums[key] = held + value.detach().float().reshape(())
        loop = runner.train_loop
        host = self._sums
        host["time"] = host.get("time", 0.0) + loop.iter_time
        host["data_time"] = host.get("data_time", 0.0) + loop.data_time
        # grad_norm is a device tensor: summed there (into a tensor of this hook's own), read at the interval.
        norm = runner.optim_wrapper.grad_norm
        held_norm = host.get("grad_norm")
        if held_norm is None:
            host["grad_norm"] = 0.0 + norm
        elif (type(held_norm) is torch.Tensor and type(norm) is torch.Tensor and norm.dtype is held_norm.dtype
              and norm.dim() == 0):
            held_norm.add_(norm)
        else:
            host["grad_norm"] = held_norm + norm
        if not data_batch:
            samples = 0
        elif len(data_batch) == 1:
            samples = batch_samples(data_batch[0])
        else:
            samples = sum(batch_samples(b) for b in data_batch)
        host["samples"] = host.get("samples", 0.0) + float(
            samples or runner.cfg["data"]["batch_size"] * runner.optim_wrapper.accumulative_counts)
        self._count += 1
        step = loop.iter + 1
        last = step == loop.max_iters and not self.ignore_last
        if step % self.interval == 0 or last:
            self._clear_bar()
            self._publish(runner, step)
        if self.progress_bar is not False and self._bar_enabled(runner):
            self._draw_bar(runner, step)
            if step == runner.max_iters:
                self.stream.write("\n")
                self._bar_shown = False

    def _adopt(self, outputs: dict[str, Any]) -> None:
        """Move a resumed window's sums to the device of the values they are summed with, as new tensors: what the
        checkpoint holds is never added to in place."""
        device = next((v.device for v in outputs.values() if isinstance(v, torch.Tensor)), None)
        if device is None:
            return
        self._model_sums = {k: v.to(device, copy=True) if isinstance(v, torch.Tensor) else v
                            for k, v in self._model_sums.items()}
        self._foreign = False

    def _publish(self, runner: Any, step: int) -> None:
        runner.train_loop.settle()  # a non-finite loss flagged on the device ends the run before it is logged
        samples = self._sums.pop("samples", 0.0)
        time_sum = self._sums.get("time", 0.0)
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
        if runner.accelerator.num_processes > 1:  # every rank's samples count (a collective: every rank is here)
            samples = float(runner.accelerator.reduce(
                torch.tensor(samples, dtype=torch.float64, device=runner.accelerator.device), reduction="sum"))
        if time_sum > 0:
            scalars["train/throughput"] = samples / time_sum
        if runner.optim_wrapper.skipped_steps:
            scalars["train/skipped_steps"] = float(runner.optim_wrapper.skipped_steps)
        runner.log_scalars(scalars, step)
        self._last = scalars
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
        self._clear_bar()
        by_epoch = self.log_metric_by_epoch and runner.train_loop is not None and runner.train_loop.by_epoch
        runner.log_scalars(scalars, runner.epoch if by_epoch else runner.iter)
        if runner.is_main_process:
            runner.logger.info("Iter(val)   [%d]  %s", runner.iter, _shown(runner.headline(metrics)))

    def after_test_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        if runner.is_main_process:
            runner.logger.info("Test  %s", _shown(runner.headline(metrics or {})))


def batch_samples(batch: Any) -> int:
    """Samples in one micro-batch: the length of its first tensor (depth-first through tuples, lists and dicts), as
    any collate that stacks items makes it; 0 when it holds no tensor (then `data.batch_size` is counted)."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, dict):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            found = batch_samples(item)
            if found:
                return found
    return 0


def _shown(metrics: dict[str, float]) -> str:
    return "  ".join(f"{k}: {v:.4g}" for k, v in metrics.items())
