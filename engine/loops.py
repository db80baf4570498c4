"""Training, validation and test loops: small classes with `run` / `run_epoch` / `run_iter`, as in MMEngine."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from engine.runner import Runner


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


def _set_epoch(dataloader: Any, epoch: int) -> None:
    """Epoch-dependent shuffling (seedable sampler) and augmentation (dataset) for `epoch`."""
    if hasattr(dataloader, "set_epoch"):
        dataloader.set_epoch(epoch)
    dataset: Any = getattr(dataloader, "dataset", None)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)


class BaseTrainLoop:
    """Shared state of train loops: counters, the validation schedule, the train step over one window."""

    by_epoch = False

    def __init__(self, runner: Runner, dataloader: Any, val_begin: int = 1, val_interval: int = 1) -> None:
        self.runner: Any = runner  # typed loosely: its optional parts are all set during training
        self.dataloader = dataloader
        self.val_begin = val_begin
        self.val_interval = val_interval
        self.iter = 0
        self.epoch = 0
        self.stop_training = False
        # True while after_train_iter / after_train_epoch run: a checkpoint taken then counts the finished step.
        self._iter_done = False
        self._epoch_done = False
        self.stream = DataStream(dataloader, runner.accelerator)

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
        model.train()
        # A short (end-of-epoch) window still yields the mean gradient: Accelerate divides by the full count.
        scale = self.accumulative_counts / len(window)
        ow.begin_window(len(window))
        totals: dict[str, torch.Tensor] = {}
        for images, masks in window:
            with ow.optim_context(model):
                losses = model(images, masks)
                loss = sum(v for k, v in losses.items() if "loss" in k)
                losses = {"loss": loss, **losses}
                if not bool(torch.isfinite(loss)):
                    raise NonFiniteLossError(f"non-finite loss {loss.item()} at iteration {self.iter + 1}; nothing "
                                             f"from this step was applied (last checkpoint: "
                                             f"{runner.last_checkpoint or 'none'})")
                ow.update_params(loss * scale if scale != 1 else loss)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0) + v.detach()
        outputs = {k: v / len(window) for k, v in totals.items()}
        self._iter_done = True
        runner.call_hook("after_train_iter", batch_idx=batch_idx, data_batch=window, outputs=outputs)
        self._iter_done = False
        self.iter += 1

    def _maybe_validate(self, count: int, last: int) -> None:
        if self.runner.val_loop is not None and count >= self.val_begin and (
            count % self.val_interval == 0 or count == last
        ):
            self.runner.val_loop.run()

    def state_dict(self) -> dict[str, int]:
        return {"iter": self.iter + self._iter_done, "epoch": self.epoch + self._epoch_done,
                "data_epoch": self.stream.epoch, "data_position": self.stream.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.iter, self.epoch = int(state["iter"]), int(state["epoch"])
        self.stream.seek(int(state["data_epoch"]), int(state["data_position"]))


class IterBasedTrainLoop(BaseTrainLoop):
    """Train for `max_iters` optimizer steps over an endless stream; validate every `val_interval` iterations."""

    def __init__(self, runner: Runner, dataloader: Any, max_iters: int, val_begin: int = 1,
                 val_interval: int = 1000) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval)
        self.max_iters = max_iters
        self.max_epochs = 1

    def run(self) -> None:
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        while self.iter < self.max_iters and not self.stop_training:
            window = [self.stream.next() for _ in range(self.accumulative_counts)]
            self.run_iter(window, self.iter)
            self._maybe_validate(self.iter, self.max_iters)
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")


class EpochBasedTrainLoop(BaseTrainLoop):
    """Train for `max_epochs` passes over the data; validate every `val_interval` epochs."""

    by_epoch = True

    def __init__(self, runner: Runner, dataloader: Any, max_epochs: int, val_begin: int = 1,
                 val_interval: int = 1) -> None:
        super().__init__(runner, dataloader, val_begin, val_interval)
        self.max_epochs = max_epochs
        self.iters_per_epoch = math.ceil(len(dataloader) / self.accumulative_counts)
        self.max_iters = max_epochs * self.iters_per_epoch

    def run(self) -> None:
        self.runner.call_hook("before_train")
        while self.epoch < self.max_epochs and not self.stop_training:
            self.run_epoch()
            self._maybe_validate(self.epoch, self.max_epochs)
        self.runner.call_hook("after_train")

    def run_epoch(self) -> None:
        self.runner.call_hook("before_train_epoch")
        n_batches = len(self.dataloader)
        self.stream.seek(self.epoch, self.stream.position if self.stream.epoch == self.epoch else 0)
        while self.stream.position < n_batches and not self.stop_training:
            # Windows start at multiples of the count (also after a mid-epoch resume), so this is the index of the
            # iteration inside the epoch.
            batch_idx = self.stream.position // self.accumulative_counts
            size = min(self.accumulative_counts, n_batches - self.stream.position)
            self.run_iter([self.stream.next() for _ in range(size)], batch_idx)
        self._epoch_done = True
        self.runner.call_hook("after_train_epoch")
        self._epoch_done = False
        self.epoch += 1


class _EvalLoop:
    """Shared body of ValLoop and TestLoop: no-grad predictions scored by the evaluator across all processes."""

    mode = "val"

    def __init__(self, runner: Runner, dataloader: Any, evaluator: Any) -> None:
        self.runner = runner
        self.dataloader = dataloader
        self.evaluator = evaluator

    @torch.no_grad()
    def run(self) -> dict[str, float]:
        runner, mode = self.runner, self.mode
        runner.call_hook(f"before_{mode}")
        runner.call_hook(f"before_{mode}_epoch")
        runner.model.eval()
        self.evaluator.reset()
        for idx, (images, masks) in enumerate(self.dataloader):
            runner.call_hook(f"before_{mode}_iter", batch_idx=idx, data_batch=(images, masks))
            logits = runner.model(images)
            preds = logits.argmax(dim=1)
            # gather_for_metrics drops the samples DDP padding duplicated, so every image counts exactly once.
            preds, masks = runner.accelerator.gather_for_metrics((preds, masks))
            self.evaluator.process(preds, masks)
            runner.call_hook(f"after_{mode}_iter", batch_idx=idx, data_batch=(images, masks), outputs=preds)
        metrics = self.evaluator.compute()
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
