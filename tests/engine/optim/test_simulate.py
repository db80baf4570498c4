"""simulate_schedule and build_schedulers on the real epoch length (16 training images, batch 4: 4 per epoch)."""

from __future__ import annotations

from typing import Any

import pytest

from engine import build
from engine.errors import ConfigError, UserError
from engine.optim.simulate import simulate_schedule
from engine.optim.wrapper import OptimWrapper
from tests.engine.fixtures import make_cfg

BASE, START = 0.1, 0.1
EPOCH_LENGTH = 4  # ceil(16 / 4) iterations per epoch
EPOCH_LOOP = {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 3, "val_interval": 1}


def linear(row: int, last: int) -> float:
    """LinearLR's value at 1-based iteration `row` for the window [0, last + 1) (T = end - begin - 1 = last)."""
    return BASE * (START + (1 - START) * min(row - 1, last) / last)


def lrs(overrides: dict[str, Any]) -> list[float]:
    return [row["lr"] for row in simulate_schedule(make_cfg(overrides, max_iters=20))]


def test_converted_epoch_entry_in_an_iteration_loop() -> None:
    got = lrs({"param_scheduler": [{"type": "LinearLR", "start_factor": START, "by_epoch": True, "begin": 0,
                                    "end": 2, "convert_to_iter_based": True}]})
    assert len(got) == 20
    for row in (1, 2, 5, 7, 8, 9, 20):  # end 2 epochs = iteration 8, T = 7
        assert got[row - 1] == pytest.approx(linear(row, 7), rel=1e-12), row
    assert got[0] == pytest.approx(0.01) and got[1] == pytest.approx(0.1 * (0.1 + 0.9 / 7))


def test_converted_entry_without_end_runs_to_the_last_whole_epoch() -> None:
    # max_iters 18 is 4.5 epochs: end = ceil(18 / 4) = 5 epochs = 20 iterations, so T = 19 (past the run's end).
    cfg = make_cfg({"param_scheduler": [{"type": "LinearLR", "start_factor": START, "by_epoch": True,
                                         "convert_to_iter_based": True}]}, max_iters=18)
    got = [row["lr"] for row in simulate_schedule(cfg)]
    assert len(got) == 18
    for row in (1, 2, 10, 18):
        assert got[row - 1] == pytest.approx(linear(row, 19), rel=1e-12), row


def test_iteration_entry_without_end_in_an_epoch_loop() -> None:
    got = lrs({"train_cfg": EPOCH_LOOP,
               "param_scheduler": [{"type": "LinearLR", "start_factor": START, "by_epoch": False, "begin": 0}]})
    assert len(got) == 12  # 3 epochs of 4
    for row in (1, 2, 6, 11, 12):  # end = 3 * 4 = 12 iterations, T = 11
        assert got[row - 1] == pytest.approx(linear(row, 11), rel=1e-12), row
    assert got[-1] == pytest.approx(BASE)


def test_one_cycle_too_short_after_conversion_is_refused_by_check_and_build_alike() -> None:
    entry = {"type": "OneCycleLR", "eta_max": 0.1, "total_steps": 2, "convert_to_iter_based": True}
    message = ("param_scheduler.0.total_steps: OneCycleLR: total_steps=2 epochs = 8 iterations "
               "(convert_to_iter_based, 4 per epoch) is shorter than the window [0, 12); it would fail at step 9. "
               "Raise total_steps or lower end")
    with pytest.raises(ConfigError) as info:
        make_cfg({"train_cfg": EPOCH_LOOP, "param_scheduler": [entry]})
    assert info.value.problems == [message]
    cfg = make_cfg({"train_cfg": EPOCH_LOOP})
    cfg["param_scheduler"] = [entry]
    optimizer = build.build_optimizer(cfg, build.build_model(cfg))
    with pytest.raises(UserError) as built:
        build.build_schedulers(cfg, OptimWrapper(None, optimizer), EPOCH_LENGTH)
    assert str(built.value) == message
