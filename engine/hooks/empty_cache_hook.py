"""EmptyCacheHook: release PyTorch's cached CUDA memory before/after epochs or after iterations."""

from __future__ import annotations

from typing import Any

import torch

from engine.hooks.hook import Hook, Priority


class EmptyCacheHook(Hook):
    """MMEngine's EmptyCacheHook: `torch.cuda.empty_cache()` at the chosen points of training, validation and testing
    alike (an epoch of validation or testing is one pass over its loader). Does nothing without CUDA."""

    priority = Priority.NORMAL

    def __init__(self, before_epoch: bool = False, after_epoch: bool = True, after_iter: bool = False) -> None:
        for name, value in (("before_epoch", before_epoch), ("after_epoch", after_epoch),
                            ("after_iter", after_iter)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        self.at_before_epoch = before_epoch
        self.at_after_epoch = after_epoch
        self.at_after_iter = after_iter

    @staticmethod
    def _empty() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _before_epoch(self) -> None:
        if self.at_before_epoch:
            self._empty()

    def _after_epoch(self) -> None:
        if self.at_after_epoch:
            self._empty()

    def _after_iter(self) -> None:
        if self.at_after_iter:
            self._empty()

    def before_train_epoch(self, runner: Any) -> None:
        self._before_epoch()

    def before_val_epoch(self, runner: Any) -> None:
        self._before_epoch()

    def before_test_epoch(self, runner: Any) -> None:
        self._before_epoch()

    def after_train_epoch(self, runner: Any) -> None:
        self._after_epoch()

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._after_epoch()

    def after_test_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self._after_epoch()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._after_iter()

    def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._after_iter()

    def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._after_iter()
