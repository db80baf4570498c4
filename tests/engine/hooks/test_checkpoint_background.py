"""CheckpointHook `background: true`: each checkpoint holds the state of its own iteration although training goes on
while it is written, the end of training waits for the writer (also after an early stop), and a failed background
write stops training with its error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import engine.checkpoint as checkpoint_module
from engine.checkpoint import POINTER, SLOW_WRITE_ENV, CheckpointWriter, load_checkpoint, snapshot
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import make_cfg, make_runner

ITERS = 6


def _cfg(background: bool, interval: int = 2) -> dict[str, Any]:
    return make_cfg({"train_cfg": {"max_iters": ITERS, "val_interval": 100},
                     "default_hooks": {"checkpoint": {"interval": interval, "max_keep_ckpts": -1,
                                                      "background": background}}}, max_iters=ITERS)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


class Busy(Hook):
    """After CheckpointHook: whether a background write was still running at the end of each iteration."""

    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.busy: list[bool] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.busy.append(runner.checkpoint_writer.busy)


def _train(cfg: dict[str, Any], root: Path, *hooks: Hook) -> Any:
    runner = make_runner(cfg, root)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def test_background_checkpoints_hold_the_state_of_their_iteration(tmp_path: Path, monkeypatch) -> None:
    written = _train(_cfg(background=False), tmp_path / "sync")
    monkeypatch.setenv(SLOW_WRITE_ENV, "0.5")  # each write outlasts the next iterations
    busy = Busy()
    runner = _train(_cfg(background=True), tmp_path / "background", busy)
    assert busy.busy[1] and busy.busy[2]  # iter_2 was still being written while iteration 3 trained
    assert not runner.checkpoint_writer.busy
    for name in ("iter_2", "iter_4", "iter_6"):
        expected, actual = load_checkpoint(written.work_dir / name), load_checkpoint(runner.work_dir / name)
        assert _same(actual[0], expected[0]), name  # weights
        assert _same(actual[1]["optim_wrapper"], expected[1]["optim_wrapper"]), name
        assert _same(actual[1]["loop"], expected[1]["loop"]), name
        assert actual[2]["iter"] == expected[2]["iter"]
    assert (runner.work_dir / POINTER).read_text() == "iter_6"


class StopEarly(Hook):
    """Before CheckpointHook: stops training after iteration 4 (as EarlyStoppingHook sets `stop_training`); at
    after_train, records what the work dir holds then."""

    priority = Priority.HIGHEST

    def __init__(self) -> None:
        self.at_end: tuple[bool, list[str], str] | None = None

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 == 4:
            runner.train_loop.stop_training = True

    def after_train(self, runner: Any) -> None:
        names = sorted(p.name for p in runner.work_dir.iterdir() if p.is_dir())
        self.at_end = (runner.checkpoint_writer.busy, names, (runner.work_dir / POINTER).read_text())


def test_an_early_stop_waits_for_the_background_write_before_after_train(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(SLOW_WRITE_ENV, "0.5")
    stop = StopEarly()
    runner = _train(_cfg(background=True), tmp_path, stop)
    assert runner.iter == 4
    assert stop.at_end == (False, ["iter_2", "iter_4"], "iter_4")
    load_checkpoint(runner.work_dir / "iter_4")  # complete


def test_a_failed_background_write_stops_training_with_its_error(tmp_path: Path, monkeypatch) -> None:
    def fail(tmp: Path, *args: Any) -> None:
        raise RuntimeError("the disk said no")

    monkeypatch.setattr(checkpoint_module, "_write_files", fail)
    busy = Busy()
    runner = make_runner(_cfg(background=True), tmp_path)
    runner.register_hook(busy)
    with pytest.raises(RuntimeError, match="the disk said no"):
        runner.train()
    assert len(busy.busy) < ITERS  # raised at an iteration after the failed write, not at the end
    assert not (runner.work_dir / POINTER).exists() and not (runner.work_dir / "iter_2").exists()


def test_the_writer_runs_one_write_at_a_time_in_order_and_keeps_errors() -> None:
    writer, seen = CheckpointWriter(), []
    for i in range(3):
        writer.submit(lambda i=i: seen.append(i))
    writer.wait()
    assert seen == [0, 1, 2]
    writer.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        writer.wait()
    writer.wait()  # raised once


def test_a_snapshot_shares_no_tensor_or_container_with_its_source() -> None:
    state = {"w": torch.ones(3), "groups": [{"lr": 0.1, "params": [0]}]}
    copy = snapshot(state)
    state["w"].add_(1)
    state["groups"][0]["lr"] = 0.2
    assert torch.equal(copy["w"], torch.ones(3)) and copy["groups"][0]["lr"] == 0.1


def test_background_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="background must be true or false"):
        CheckpointHook(background="yes")  # type: ignore[arg-type]
