"""EmptyCacheHook: empty_cache is called exactly at the chosen events of train, val and test, and never without CUDA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from engine.hooks import HOOKS
from engine.hooks.empty_cache_hook import EmptyCacheHook
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import make_cfg, make_runner


class _EventLog(Hook):
    """Records the event being fired when empty_cache is called (runs first, at every event the hook handles)."""

    priority = Priority.HIGHEST

    def __init__(self) -> None:
        self.current = ""

    def _set(self, event: str) -> None:
        self.current = event


for _event in ("before_train_epoch", "before_val_epoch", "after_train_epoch", "after_val_epoch"):
    setattr(_EventLog, _event, (lambda e: lambda self, runner, metrics=None: self._set(e))(_event))
for _event in ("after_train_iter", "after_val_iter"):
    setattr(_EventLog, _event,
            (lambda e: lambda self, runner, batch_idx, data_batch=None, outputs=None: self._set(e))(_event))


def _calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda: bool, **kwargs: Any) -> list[str]:
    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 3, "val_interval": 2}}), tmp_path)
    log = _EventLog()
    runner.register_hook(log)
    runner.register_hook(EmptyCacheHook(**kwargs))
    calls: list[str] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(log.current))
    runner.train()
    return calls


# 3 iterations, validation after iterations 2 and 3 (one batch each); the iteration loop has one train epoch.
@pytest.mark.parametrize(("kwargs", "expected"), [
    ({}, ["after_val_epoch", "after_val_epoch", "after_train_epoch"]),
    ({"after_epoch": False, "before_epoch": True}, ["before_train_epoch", "before_val_epoch", "before_val_epoch"]),
    ({"after_epoch": False, "after_iter": True},
     ["after_train_iter", "after_train_iter", "after_val_iter", "after_train_iter", "after_val_iter"]),
])
def test_empties_the_cache_at_the_chosen_events(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                kwargs: dict[str, Any], expected: list[str]) -> None:
    assert _calls(tmp_path, monkeypatch, True, **kwargs) == expected


def test_does_nothing_without_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _calls(tmp_path, monkeypatch, False, before_epoch=True, after_iter=True) == []


def test_test_epochs_count_too() -> None:
    hook = EmptyCacheHook(before_epoch=True, after_iter=True)
    calls: list[int] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.cuda, "is_available", lambda: True)
        mp.setattr(torch.cuda, "empty_cache", lambda: calls.append(1))
        hook.before_test_epoch(None)
        hook.after_test_iter(None, batch_idx=0)
        hook.after_test_epoch(None, metrics={})
    assert len(calls) == 3


def test_registered_with_mmengine_defaults() -> None:
    hook = HOOKS["EmptyCacheHook"]()
    assert (hook.at_before_epoch, hook.at_after_epoch, hook.at_after_iter) == (False, True, False)


def test_non_bool_argument_is_refused() -> None:
    with pytest.raises(ValueError, match="after_iter must be true or false, got 'yes'"):
        EmptyCacheHook(after_iter="yes")  # type: ignore[arg-type]
