"""Training, validation and test loops: small classes with `run` / `run_epoch` / `run_iter`, as in MMEngine."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import torch

from engine.protocols import Evaluator, RunnerLike
from engine.signals import check_stop


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss; raised before the bad step is applied to anything that is saved."""


class DataStream:
    """Endless batches from a finite dataloader, tracking (epoch, batch index) so a resume can skip by index."""

    def __init__(self, dataloader: Any, accelerator: Any) -> None:
        self.dataloader = dataloader
        self.accelerator = accelerator
        self.epoch = 0
        self.position = 0  # batches already taken from the current epoch
        self._it: Iterator | None = None

    def seek(self, epoch: int, position: int) -> None:
        """Continue at batch `position` of `epoch`: the sampler is re-seeded for that epoch and batches skipped by
        index (Accelerate's skip_first_batches), never loaded and discarded."""
        self.epoch, self.position, self._it = epoch, position, None

    def _start_epoch(self) -> Iterator:
        _set_epoch(self.dataloader, self.epoch)
        loader = self.dataloader
        if self.position:
            loader = self.accelerator.skip_first_batches(self.dataloader, self.position)
        return iter(loader)

    def next(self) -> Any:
        if self._it is None:
            self._it = self._start_epoch()
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch, self.position = self.epoch + 1, 0
            self._it = self._start_epoch()
            batch = next(self._it)
        self.position += 1
        return batch


def _total_loss(losses: Any) -> torch.Tensor:
    """The sum of the terms whose key contains `loss` (what is back-propagated)."""
    terms = [v for k, v in losses.items() if "loss" in k] if isinstance(losses, dict) else []
    if not terms:
        keys = f" with keys {', '.join(map(str, losses))}" if isinstance(losses, dict) else ""
        raise TypeError(f"model(batch, mode='loss') must return a dict with at least one key containing "
                        f"'loss', got {type(losses).__name__}{keys}")
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _logged(loss: torch.Tensor, losses: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A one-micro-batch iteration's outputs: `loss` first, then every term of `losses`, detached (a term named
    `loss` stands for itself, as `{"loss": loss, **losses}` has it); each tensor is detached once."""
    out = {k: v.detach() for k, v in losses.items()}
    if "loss" in out and next(iter(out)) == "loss":
        return out
    return {"loss": out["loss"] if "loss" in out else loss.detach(), **out}


def _set_epoch(dataloader: Any, epoch: int) -> None:
    """Epoch-dependent shuffling (seedable sampler) and augmentation (dataset) for `epoch`."""
    if hasattr(dataloader, "set_epoch"):
        dataloader.set_epoch(epoch)
    dataset: Any = getattr(dataloader, "dataset", None)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


class BaseTrainLoop:
    """Shared state of train loops: counters, the validation schedule, the train step over one window, and the
    timing hooks read (`iter_time`, `data_time`, `eta_seconds()`), measured here so no hook depends on another."""

    by_epoch = False
    max_iters: int
    max_epochs: int

    def __init__(self, dataloader: Any, val_begin: int = 1, val_interval: int = 1, nonfinite: str = "stop",
                 max_nonfinite_skips: int = 5) -> None:
        if nonfinite not in ("stop", "skip"):
            raise ValueError(f"nonfinite must be stop or skip, got {nonfinite!r}")
        if max_nonfinite_skips < 1:
            raise ValueError(f"max_nonfinite_skips must be at least 1, got {max_nonfinite_skips}")
        self.dataloader = dataloader
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.nonfinite = nonfinite
        self.max_nonfinite_skips = max_nonfinite_skips
        self.nonfinite_skips = 0  # iterations whose step was skipped for a NaN/inf loss, in the whole run
        self._consecutive_skips = 0
        self.iter = 0
        self.epoch = 0
        self.stop_training = False
        # True while after_train_iter / after_train_epoch run: a checkpoint taken then counts the finished step.
        self._iter_done = False
        self._epoch_done = False
        self._resumed_at_boundary = False  # set by load_state_dict: see _catch_up_validation
        self.iter_time = 0.0
        self.data_time = 0.0
        self._clock = 0.0
        self._timed = 0.0  # summed iter_time of the iterations this process ran (the ETA's pace)
        self._timed_iters = 0
        self._halted_steps = torch.zeros(())  # see _flag_nonfinite (moved to the model's device when used)

    def attach(self, runner: RunnerLike) -> None:
        """Called once by the Runner that owns this loop."""
        self.runner = runner
        self.stream = DataStream(self.dataloader, runner.accelerator)
        self._world = runner.accelerator.num_processes  # fixed for the run; read on every step

    def start_clock(self) -> None:
        """Start timing at the current iteration: after a resume the ETA averages only what this process ran."""
        self._clock = time.perf_counter()
        self._timed, self._timed_iters = 0.0, 0

    def eta_seconds(self) -> float:
        """Iterations left times the mean `iter_time` of the iterations this process ran (as MMEngine's
        IterTimerHook: validation is not an iteration's time, so neither a resume's catch-up validation nor the
        checkpoint load skews the pace), NaN before the first one."""
        if not self._timed_iters:
            return float("nan")
        return self._timed / self._timed_iters * (self.max_iters - self.iter - self._iter_done)

    def next_window(self, size: int) -> list[Any]:
        """`size` batches from the stream; the time spent waiting for them is this iteration's `data_time`."""
        window = [self.stream.next() for _ in range(size)]
        self.data_time = time.perf_counter() - self._clock
        return window

    @property
    def accumulative_counts(self) -> int:
        return self.runner.optim_wrapper.accumulative_counts

    def run_iter(self, window: list[Any], batch_idx: int) -> None:
        """One iteration = one optimizer step over `window` (its micro-batches).

        `batch_idx` is what hooks receive, as in MMEngine: the global iteration in the iteration loop, the
        iteration's index inside the current epoch in the epoch loop.
        """
        runner, model, ow = self.runner, self.runner.model, self.runner.optim_wrapper
        runner.call_hook("before_train_iter", batch_idx=batch_idx, data_batch=window)
        # train() walks every module: only when validation (or a hook) switched the model to eval mode.
        if not model.training:
            model.train()
        size = len(window)
        # A short (end-of-epoch) window still yields the mean gradient: Accelerate divides by the full count.
        scale = ow.accumulative_counts / size
        ow.begin_window(size)
        deferred = self._defer_check(ow)
        plain = ow.plain_step  # no accumulation context to enter (one micro-batch a step, no scaler)
        last = window[-1]
        totals: dict[str, torch.Tensor] = {}
        stepped = True
        for batch in window:
            if plain:
                done = self._micro_batch(model, ow, batch, scale, deferred, batch is last)
            else:
                with ow.optim_context(model):
                    done = self._micro_batch(model, ow, batch, scale, deferred, batch is last)
            if done is None:
                stepped = False
                break
            loss, losses = done
            if size == 1:
                totals = _logged(loss, losses)
            else:
                for k, v in {"loss": loss, **losses}.items():
                    totals[k] = totals[k] + v.detach() if k in totals else v.detach()
        if stepped:
            self._consecutive_skips = 0
        else:
            self._skip_step()
            totals = {}
        outputs = totals if size == 1 else {k: v / size for k, v in totals.items()}
        now = time.perf_counter()
        self.iter_time, self._clock = now - self._clock, now
        self._timed += self.iter_time
        self._timed_iters += 1
        self._iter_done = True
        if deferred and self.iter + 1 >= self.max_iters:
            self.settle()  # the last iteration: the run's result must not hide a non-finite loss
        runner.call_hook("after_train_iter", batch_idx=batch_idx, data_batch=window, outputs=outputs)
        self._iter_done = False
        self.iter += 1

    def _micro_batch(self, model: Any, ow: Any, batch: Any, scale: float, deferred: bool,
                     last: bool) -> tuple[torch.Tensor, Any] | None:
        """Forward and backward of one micro-batch (the optimizer steps on the window's last): (total loss, the
        model's losses), or None when a host-checked loss is not finite (under `nonfinite: skip`)."""
        losses = model(batch, mode="loss")
        loss = _total_loss(losses)
        if deferred:
            self._flag_nonfinite(loss, last=last)
        elif not self._finite(loss):
            return None
        ow.update_params(loss * scale if scale != 1 else loss)
        return loss, losses

    # -- non-finite losses ------------------------------------------------------------------------------------------
    # On the host (every step reads the loss): `nonfinite: skip` (the schedules must not advance for a skipped step,
    # and they are stepped on the host), and optimizers that cannot skip a step on the device. On the device (no
    # sync): `nonfinite: stop` with an optimizer that honours `found_inf` (fused Adam/AdamW/SGD/Adagrad) after its
    # first step: a non-finite loss sets a flag that makes this and every later step a no-op inside the optimizer,
    # and `settle()` (at a logged interval, before a checkpoint or validation, at the last iteration) raises.

    def _defer_check(self, ow: Any) -> bool:
        if self.nonfinite != "stop" or not ow.takes_found_inf:
            return False
        if ow.found_inf is None:
            device = next(iter(self.runner.model.parameters())).device
            ow.found_inf = torch.zeros((), device=device)
            self._halted_steps = torch.zeros((), device=device)
        return True

    def _flag_nonfinite(self, loss: torch.Tensor, last: bool) -> None:
        """Device-side: sets `found_inf` to 1.0 (for good) if `loss` is not finite on any process."""
        bad = torch.isfinite(loss.detach()).logical_not_()
        if self._world > 1:  # every rank must skip alike: a collective, not a host read
            bad = self.runner.accelerator.reduce(bad.float(), reduction="sum")
        found_inf = self.runner.optim_wrapper.found_inf
        found_inf.logical_or_(bad)  # in place on a float tensor: 1.0 / 0.0
        if last:
            self._halted_steps.add_(found_inf)  # steps the flag has skipped: where the first bad one was

    def settle(self) -> None:
        """Read the device-side non-finite flag (one host sync) and, if it is set, end the run as `nonfinite: stop`
        does. Called where values leave the device anyway: a logged interval, a checkpoint, validation, the end."""
        ow = self.runner.optim_wrapper
        if ow.found_inf is None or not bool(ow.found_inf):
            return
        done = self.iter + self._iter_done
        first = done - int(self._halted_steps.item()) + 1
        raise NonFiniteLossError(f"non-finite loss at iteration {first}; nothing from that step or later was "
                                 f"applied (last checkpoint: {self.runner.last_checkpoint or 'none'}); "
                                 f"train_cfg.nonfinite: skip would skip such steps instead")

    def _finite(self, loss: torch.Tensor) -> bool:
        """Whether `loss` is finite on every process; under `nonfinite: stop` a non-finite one ends the run here,
        before anything of this step is applied."""
        if self._world > 1:  # every rank must take the same branch, or DDP hangs
            bad = torch.isfinite(loss.detach()).logical_not_().float()
            ok = not bool(self.runner.accelerator.reduce(bad, reduction="sum"))
        else:
            ok = bool(torch.isfinite(loss))  # isfinite records no graph: no detach needed
        if ok:
            return True
        if self.nonfinite == "stop":
            raise NonFiniteLossError(f"non-finite loss {loss.item()} at iteration {self.iter + 1}; nothing from this "
                                     f"step was applied (last checkpoint: {self.runner.last_checkpoint or 'none'}); "
                                     f"train_cfg.nonfinite: skip would skip such steps instead")
        return False

    def _skip_step(self) -> None:
        """`nonfinite: skip`: nothing of this window reaches the weights and the schedules do not advance (as for
        an fp16 overflow); the count is logged, and `max_nonfinite_skips` in a row end the run."""
        ow = self.runner.optim_wrapper
        ow.optimizer.zero_grad(set_to_none=True)
        ow.step_was_skipped = True
        ow.skipped_steps += 1  # logged as train/skipped_steps
        self.nonfinite_skips += 1
        self._consecutive_skips += 1
        if self._consecutive_skips >= self.max_nonfinite_skips:
            raise NonFiniteLossError(f"non-finite loss in {self._consecutive_skips} iterations in a row (up to "
                                     f"iteration {self.iter + 1}; train_cfg.max_nonfinite_skips = "
                                     f"{self.max_nonfinite_skips}); giving up (last checkpoint: "
                                     f"{self.runner.last_checkpoint or 'none'})")
        self.runner.logger.warning("non-finite loss at iteration %d: step skipped (%d so far)", self.iter + 1,
                                   self.nonfinite_skips)

    def _maybe_validate(self, count: int, last: int) -> None:
        if self.runner.val_loop is not None and count >= self.val_begin and (
            count % self.val_interval == 0 or count == last
        ):
            self.settle()  # no validation of weights a non-finite loss stopped
            self.runner.val_loop.run()
            self._clock = time.perf_counter()  # validation time is not the next iteration's data time

    def _catch_up_validation(self, count: int, last: int) -> None:
        """A checkpoint is written before the validation of its step: after a resume exactly there, run that
        validation unless the checkpoint's history already holds it (a run killed between the two lost it)."""
        if not self._resumed_at_boundary:
            return
        self._resumed_at_boundary = False
        step = self.runner.iter
        if any(r.get("step") == step and any(k.startswith("val/") for k in r) for r in self.runner.history):
            return
        self._maybe_validate(count, last)

    def state_dict(self) -> dict[str, int]:
        return {"iter": self.iter + self._iter_done, "epoch": self.epoch + self._epoch_done,
                "data_epoch": self.stream.epoch, "data_position": self.stream.position,
                "nonfinite_skips": self.nonfinite_skips, "consecutive_skips": self._consecutive_skips}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iter, self.epoch = int(state["iter"]), int(state["epoch"])
        self.nonfinite_skips = int(state.get("nonfinite_skips", 0))
        self._consecutive_skips = int(state.get("consecutive_skips", 0))
        self.stream.seek(int(state["data_epoch"]), int(state["data_position"]))
        # Iteration loop: every checkpoint ends an iteration. Epoch loop: only one taken after a finished epoch
        # (its epoch count is ahead of the data's), not a mid-epoch one.
        self._resumed_at_boundary = self.iter > 0 and (not self.by_epoch or self.epoch > int(state["data_epoch"]))


class IterBasedTrainLoop(BaseTrainLoop):
    """Train for `max_iters` optimizer steps over an endless stream; validate every `val_interval` iterations."""

    def __init__(self, dataloader: Any, max_iters: int, val_begin: int = 1, val_interval: int = 1000,
                 nonfinite: str = "stop", max_nonfinite_skips: int = 5) -> None:
        super().__init__(dataloader, val_begin, val_interval, nonfinite, max_nonfinite_skips)
        self.max_iters = max_iters
        self.max_epochs = 1

    def run(self) -> None:
        self.runner.call_hook("before_train")
        self.start_clock()
        self.runner.call_hook("before_train_epoch")
        self._catch_up_validation(self.iter, self.max_iters)

        while self.iter < self.max_iters and not self.stop_training:
            check_stop(self.runner)  # a requested stop (SIGTERM/SIGINT) ends here, between iterations
            window = self.next_window(self.accumulative_counts)
            self.run_iter(window, self.iter)
            self._maybe_validate(self.iter, self.max_iters)
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")


class EpochBasedTrainLoop(BaseTrainLoop):
    """Train for `max_epochs` passes over the data; validate every `val_interval` epochs."""

    by_epoch = True

    def __init__(self, dataloader: Any, max_epochs: int, val_begin: int = 1, val_interval: int = 1,
                 nonfinite: str = "stop", max_nonfinite_skips: int = 5) -> None:
        super().__init__(dataloader, val_begin, val_interval, nonfinite, max_nonfinite_skips)
        self.max_epochs = max_epochs

    def attach(self, runner: RunnerLike) -> None:
        super().attach(runner)
        self.iters_per_epoch = math.ceil(len(self.dataloader) / self.accumulative_counts)
        self.max_iters = self.max_epochs * self.iters_per_epoch

    def run(self) -> None:
        self.runner.call_hook("before_train")
        self.start_clock()
        self._catch_up_validation(self.epoch, self.max_epochs)

        while self.epoch < self.max_epochs and not self.stop_training:
            self.run_epoch()
            self._maybe_validate(self.epoch, self.max_epochs)
        self.runner.call_hook("after_train")

    def run_epoch(self) -> None:
        self.runner.call_hook("before_train_epoch")
        n_batches = len(self.dataloader)
        self.stream.seek(self.epoch, self.stream.position if self.stream.epoch == self.epoch else 0)
        while self.stream.position < n_batches and not self.stop_training:
            check_stop(self.runner)  # a requested stop (SIGTERM/SIGINT) ends here, between iterations
            # Windows start at multiples of the count (also after a mid-epoch resume), so this is the index of the
            # iteration inside the epoch.
            batch_idx = self.stream.position // self.accumulative_counts
            size = min(self.accumulative_counts, n_batches - self.stream.position)
            self.run_iter(self.next_window(size), batch_idx)
        self._epoch_done = True
        self.runner.call_hook("after_train_epoch")
        self._epoch_done = False
        self.epoch += 1


class _EvalLoop:
    """Shared body of ValLoop and TestLoop: no-grad predictions scored by the evaluator across all processes."""

    mode = "val"

    def __init__(self, dataloader: Any, evaluator: Evaluator) -> None:
        self.dataloader = dataloader
        self.evaluator = evaluator

    def attach(self, runner: RunnerLike) -> None:
        """Called once by the Runner that owns this loop."""
        self.runner = runner

    @torch.no_grad()
    def run(self) -> dict[str, float]:
        runner, mode = self.runner, self.mode
        runner.call_hook(f"before_{mode}")
        runner.call_hook(f"before_{mode}_epoch")
        runner.model.eval()
        self.evaluator.reset()
        for idx, batch in enumerate(self.dataloader):
            runner.call_hook(f"before_{mode}_iter", batch_idx=idx, data_batch=batch)
            # Through forward (not a helper method) so a DDP-wrapped model runs the same code path.
            outputs = runner.model(batch, mode="predict")
            # gather_for_metrics drops the samples DDP padding duplicated, so every item counts exactly once.
            gathered_batch, gathered_outputs = runner.accelerator.gather_for_metrics((batch, outputs))
            self.evaluator.process(gathered_batch, gathered_outputs)
            runner.call_hook(f"after_{mode}_iter", batch_idx=idx, data_batch=batch, outputs=outputs)
        metrics = self.evaluator.compute()
        if not isinstance(metrics, dict):
            raise TypeError(f"evaluator.compute() must return a dict of metric name -> number, got "
                            f"{type(metrics).__name__}")
        runner.call_hook(f"after_{mode}_epoch", metrics=metrics)
        runner.call_hook(f"after_{mode}")
        return metrics


class ValLoop(_EvalLoop):
    """Validation during training (`val_cfg`)."""

    mode = "val"


class TestLoop(_EvalLoop):
    """Final evaluation on the test split (`test_cfg`)."""

    mode = "test"


TRAIN_LOOPS: dict[str, type] = {"IterBasedTrainLoop": IterBasedTrainLoop, "EpochBasedTrainLoop": EpochBasedTrainLoop}
