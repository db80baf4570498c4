"""EMAHook: keep an exponential moving average of the weights; validate, test and export with it."""

from __future__ import annotations

from typing import Any

import torch

from engine.errors import UserError
from engine.hooks.hook import Hook, Priority


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class EMAHook(Hook):
    """MMEngine's EMAHook with its ExponentialMovingAverage: after each optimizer step `ema.lerp_(source, momentum)`,
    i.e. `ema = (1 - momentum) * ema + momentum * source`; the first update after the start copies the source, and
    before the start (`begin_iter` / `begin_epoch`, 1-based counts as in MMEngine) every step copies it.

    The EMA weights are swapped into the model for each validation and test epoch and swapped back after it. At
    `after_train` they are swapped in for good, so the train stage's `models/model.safetensors` holds the EMA weights.
    Checkpoints keep the raw weights in `model.safetensors` (what training continues from) and the EMA in this
    hook's state (MMEngine swaps them in the checkpoint instead), so a resume continues both exactly.
    """

    priority = Priority.NORMAL

    def __init__(self, ema_type: str = "ExponentialMovingAverage", momentum: float = 0.0002,
                 update_buffers: bool = False, begin_iter: int = 0, begin_epoch: int = 0,
                 start_iters: int | None = None) -> None:
        if ema_type != "ExponentialMovingAverage":
            raise ValueError(f"ema_type: only 'ExponentialMovingAverage' is available, got {ema_type!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 < momentum < 1:
            raise ValueError(f"momentum must be a number strictly between 0 and 1 (the weight of the new weights "
                             f"in each update), got {momentum!r}")
        if not isinstance(update_buffers, bool):
            raise ValueError(f"update_buffers must be true or false, got {update_buffers!r}")
        if start_iters is not None:
            # The older name of begin_iter; both at once would leave one of them silently ignored.
            if begin_iter:
                raise ValueError("start_iters is the older name of begin_iter: set only begin_iter")
            if not _count(start_iters):
                raise ValueError(f"start_iters must be a whole number >= 0, got {start_iters!r}")
            begin_iter = start_iters
        for name, value in (("begin_iter", begin_iter), ("begin_epoch", begin_epoch)):
            if not _count(value):
                raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        if begin_iter and begin_epoch:
            raise ValueError(f"begin_iter ({begin_iter}) and begin_epoch ({begin_epoch}): set at most one")
        self.ema_type = ema_type
        self.momentum = float(momentum)
        self.update_buffers = update_buffers
        self.begin_iter = begin_iter
        self.begin_epoch = begin_epoch
        self.steps = 0  # updates since the start (the first one copies)
        self.ema: dict[str, torch.Tensor] | None = None
        self._loaded: dict[str, torch.Tensor] | None = None
        self._swapped = False  # the EMA weights are in the model, the raw ones in self.ema

    # -- what is averaged --------------------------------------------------------------------------------------------
    def _source(self, runner: Any) -> dict[str, torch.Tensor]:
        """The tensors averaged, by state_dict name: the parameters, plus the buffers if `update_buffers`. Without
        it the model's own buffers serve the EMA weights too (MMEngine copies them into its EMA model each step)."""
        model = runner.accelerator.unwrap_model(runner.model)
        tensors = {k: p.detach() for k, p in model.named_parameters()}
        if self.update_buffers:
            tensors.update({k: b.detach() for k, b in model.named_buffers()})
        return tensors

    def _ensure(self, runner: Any) -> dict[str, torch.Tensor]:
        source = self._source(runner)
        if self.ema is None:
            self.ema = {k: v.clone() for k, v in source.items()}
        if self._loaded is not None:
            if set(self._loaded) != set(source):
                raise UserError(f"EMAHook: the checkpoint's EMA holds {sorted(set(self._loaded) ^ set(source))[:3]} "
                                f"that the model does not (or the reverse); was it saved for another model?")
            for key, value in self._loaded.items():
                self.ema[key].copy_(value)
            self._loaded = None
        return self.ema

    def _started(self, runner: Any) -> bool:
        if self.begin_epoch:
            return runner.epoch + 1 >= self.begin_epoch
        return runner.iter + 1 >= self.begin_iter

    # -- events ------------------------------------------------------------------------------------------------------
    def before_run(self, runner: Any) -> None:
        if runner.mode == "train":
            self._ensure(runner)

    def before_train(self, runner: Any) -> None:
        loop = runner.train_loop
        if self.begin_epoch > loop.max_epochs or self.begin_iter > loop.max_iters:
            what = (f"begin_epoch {self.begin_epoch} is after the last epoch ({loop.max_epochs})" if self.begin_epoch
                    else f"begin_iter {self.begin_iter} is after the last iteration ({loop.max_iters})")
            raise UserError(f"EMAHook: {what}, so the EMA would never start")

    @torch.no_grad()
    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        ema, source = self._ensure(runner), self._source(runner)
        if not self._started(runner):
            for key, value in source.items():
                ema[key].copy_(value)
            return
        for key, value in source.items():
            if self.steps == 0 or not value.is_floating_point():
                # Integer buffers (BatchNorm's num_batches_tracked) follow the source; MMEngine freezes them instead.
                ema[key].copy_(value)
            else:
                ema[key].lerp_(value, self.momentum)
        self.steps += 1

    @torch.no_grad()
    def _swap(self, runner: Any) -> None:
        ema = self._ensure(runner)
        for key, value in self._source(runner).items():
            raw = value.clone()
            value.copy_(ema[key])
            ema[key].copy_(raw)
        self._swapped = not self._swapped

    def before_val_epoch(self, runner: Any) -> None:
        if runner.mode == "train" and not self._swapped:
            self._swap(runner)

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        if runner.mode == "train" and self._swapped:
            self._swap(runner)

    # A test runner loads models/model.safetensors, which already holds the EMA weights: nothing to swap there.
    def before_test_epoch(self, runner: Any) -> None:
        self.before_val_epoch(runner)

    def after_test_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self.after_val_epoch(runner, metrics)

    def after_train(self, runner: Any) -> None:
        """Export: leave the EMA weights in the model, for `save_weights`."""
        if not self._swapped:
            self._swap(runner)

    # -- checkpoints ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The EMA tensors (on the CPU, so `torch.load(weights_only=True)` reads them) and the update count."""
        if self._loaded is not None:
            return {"steps": self.steps, "ema": dict(self._loaded)}
        if self.ema is None:
            return {"steps": self.steps}
        if self._swapped:
            raise RuntimeError("EMAHook: a checkpoint taken while the EMA weights are swapped into the model would "
                               "save them as the raw weights")
        return {"steps": self.steps, "ema": {k: v.detach().cpu().clone() for k, v in self.ema.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        if "ema" in state:
            # Copied into place at the next use, on the model's device.
            self._loaded = dict(state["ema"])
