"""scheduler_problems with and without the epoch length: converted windows in iterations, default ends, OneCycle."""

from __future__ import annotations

from typing import Any

import pytest

from engine.config.validate import check_params
from engine.optim.checks import scheduler_problems
from tests.conftest import DELETE, apply_overrides, shipped_params

EPOCH_LOOP = {"type": "EpochBasedTrainLoop", "max_epochs": 4, "max_iters": DELETE, "val_interval": 1}


def cfg_with(entries: list[dict[str, Any]], train: dict[str, Any] | None = None) -> dict[str, Any]:
    """A resolved config (data not built) whose param_scheduler is `entries`; the schedule is not checked yet."""
    overrides: dict[str, Any] = {"param_scheduler": []}
    if train is not None:
        overrides["train_cfg"] = train
    cfg, _ = check_params(apply_overrides(shipped_params(), overrides), data=False)
    cfg["param_scheduler"] = entries
    return cfg


def found(entries: list[dict[str, Any]], epoch_length: int | None, train: dict[str, Any] | None = None,
          ) -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    return scheduler_problems(cfg_with(entries, train), warnings, epoch_length=epoch_length), warnings


CONVERTED = {"type": "LinearLR", "start_factor": 0.1, "by_epoch": True, "begin": 0, "convert_to_iter_based": True}


@pytest.mark.parametrize("epoch_length", [None, 63])
def test_converted_entry_in_an_iteration_loop_is_accepted(epoch_length: int | None) -> None:
    assert found([{**CONVERTED, "end": 2}], epoch_length) == ([], [])
    assert found([CONVERTED], epoch_length) == ([], [])  # end: the run's end in epochs, ceil(600 / 63) = 10


def test_converted_end_is_compared_in_iterations_when_the_epoch_length_is_known() -> None:
    assert found([{**CONVERTED, "end": 10}], None) == ([], [])  # unknown epoch length: cannot be compared
    problems, _ = found([{**CONVERTED, "end": 10}], 63)
    assert problems == ["param_scheduler.0.end: 10 epochs = 630 iterations (convert_to_iter_based, 63 per epoch) is "
                        "beyond train_cfg.max_iters = 600; set param_scheduler.0.end <= 9 or raise "
                        "train_cfg.max_iters"]


def test_converted_windows_join_iteration_windows_in_the_gap_warning() -> None:
    entries = [{**CONVERTED, "end": 2}, {"type": "PolyLR", "begin": 130, "by_epoch": False}]
    assert found(entries, 63) == ([], ["param_scheduler: no scheduler covers iterations 126-129; the value stays "
                                       "where the previous scheduler left it"])


def test_iteration_entry_without_end_in_an_epoch_loop_is_accepted() -> None:
    entry = {"type": "LinearLR", "start_factor": 0.1, "by_epoch": False, "begin": 0}
    assert found([entry], 63, EPOCH_LOOP) == ([], [])
    assert found([entry], None, EPOCH_LOOP) == ([], [])


def test_iteration_end_in_an_epoch_loop_is_compared_with_max_epochs_times_the_epoch_length() -> None:
    entry = {"type": "LinearLR", "by_epoch": False, "begin": 0, "end": 253}
    assert found([{**entry, "end": 252}], 63, EPOCH_LOOP) == ([], [])
    assert found([entry], 63, EPOCH_LOOP)[0] == [
        "param_scheduler.0.end: 253 iterations is beyond the end of training (train_cfg.max_epochs = 4 epochs of 63 "
        "iterations = 252); set param_scheduler.0.end <= 252 or raise train_cfg.max_epochs"]
    begin_late = {"type": "PolyLR", "by_epoch": False, "begin": 300}
    assert found([begin_late], 63, EPOCH_LOOP)[0] == [
        "param_scheduler.0.end: must be greater than begin (300), got 252 (the end of training, its default)"]


ONE_CYCLE = {"type": "OneCycleLR", "eta_max": 0.01, "total_steps": 3, "convert_to_iter_based": True}


def test_one_cycle_too_short_only_after_conversion() -> None:
    # In epochs the window [0, 4) has its last step at 3 = total_steps; in iterations [0, 252) runs past 3 * 63.
    assert found([ONE_CYCLE], None, EPOCH_LOOP) == ([], [])
    assert found([ONE_CYCLE], 63, EPOCH_LOOP)[0] == [
        "param_scheduler.0.total_steps: OneCycleLR: total_steps=3 epochs = 189 iterations (convert_to_iter_based, "
        "63 per epoch) is shorter than the window [0, 252); it would fail at step 190. Raise total_steps or lower "
        "end"]
    assert found([{**ONE_CYCLE, "total_steps": 4}], 63, EPOCH_LOOP) == ([], [])
