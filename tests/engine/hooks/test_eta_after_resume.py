"""The ETA after a resume counts from the resumed iteration: (iterations left) x (mean time of the iterations this
process ran), neither diluted by the iterations before the checkpoint nor by the validation a resume catches up on."""

from __future__ import annotations

import logging
import re
import types
from pathlib import Path
from typing import Any

import pytest

import engine.loops
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import StopAt, StopTraining, make_cfg, make_runner

MAX_ITERS, K = 10, 4
FIRST_RUN_SECONDS = 100.0  # each iteration before the checkpoint: would dominate a mean over all 10
RESUMED_SECONDS = [2.0, 4.0, 6.0, 2.0, 4.0, 6.0]  # iterations K+1 .. MAX_ITERS of the resumed process
VAL_SECONDS = 1000.0  # every validation, the one the resume catches up on (at K) included


class Clock:
    """The loop's clock (`engine.loops.time`), moved only by the Tick hook."""

    def __init__(self) -> None:
        self.now = 5000.0

    def perf_counter(self) -> float:
        return self.now


class Tick(Hook):
    """Makes iteration i (0-based global index) last `seconds[i]` and every validation VAL_SECONDS."""

    priority = Priority.HIGHEST

    def __init__(self, clock: Clock, seconds: dict[int, float]) -> None:
        self.clock = clock
        self.seconds = seconds

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.clock.now += self.seconds[runner.iter]

    def before_val(self, runner: Any) -> None:
        self.clock.now += VAL_SECONDS

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        self.clock.now += 300.0  # loading and start-up are no iteration's time either


class EtaProbe(Hook):
    """Reads the loop's ETA where LoggerHook does (after_train_iter, same priority band)."""

    priority = Priority.BELOW_NORMAL

    def __init__(self) -> None:
        self.etas: list[float] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.etas.append(runner.train_loop.eta_seconds())


def _logged_etas(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [m.group(1) for r in caplog.records if (m := re.search(r"Iter\(train\).*eta: (\S+)", r.getMessage()))]


def test_eta_after_a_resume_counts_only_the_resumed_iterations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    monkeypatch.setattr(engine.loops, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    cfg = make_cfg({"train_cfg": {"max_iters": MAX_ITERS, "val_interval": K},
                    "default_hooks": {"checkpoint": {"interval": K}}})
    seconds = {i: FIRST_RUN_SECONDS for i in range(K)}
    seconds.update({K + j: s for j, s in enumerate(RESUMED_SECONDS)})

    first = make_runner(cfg, tmp_path)
    first.register_hook(Tick(clock, seconds))
    first.register_hook(StopAt(iters=K))  # after the checkpoint at K, before its validation
    with pytest.raises(StopTraining):
        first.train()

    resumed = make_runner(cfg, tmp_path)
    probe, tick = EtaProbe(), Tick(clock, seconds)
    resumed.register_hook(tick)
    resumed.register_hook(probe)
    with caplog.at_level(logging.INFO, logger="trainline"):
        resumed.train()
    assert resumed.history[0]["step"] == 1 and any(r["step"] == K and "val/mIoU" in r for r in resumed.history)

    expected = [(MAX_ITERS - K - m) * sum(RESUMED_SECONDS[:m]) / m for m in range(1, len(RESUMED_SECONDS) + 1)]
    assert expected == [10.0, 12.0, 12.0, 7.0, 3.6, 0.0]
    assert probe.etas == pytest.approx(expected)
    # The logged line (and the progress bar, which reads the same value) shows it rounded to seconds.
    assert _logged_etas(caplog) == ["0:00:10", "0:00:12", "0:00:12", "0:00:07", "0:00:04", "0:00:00"]


def test_eta_of_a_fresh_run_is_the_mean_iteration_time_times_what_is_left(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(engine.loops, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 4, "val_interval": 2}}), tmp_path)
    probe = EtaProbe()
    runner.register_hook(Tick(clock, {0: 1.0, 1: 3.0, 2: 5.0, 3: 7.0}))
    runner.register_hook(probe)
    runner.train()
    assert probe.etas == pytest.approx([3 * 1.0, 2 * 2.0, 1 * 3.0, 0.0])
