"""ProgressOutputsHook: metrics/train.json and the plots files hold each validation's state while training goes on,
in the format the end of the train stage writes them."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from engine.hooks.hook import Hook, Priority
from engine.hooks.progress_outputs_hook import ProgressOutputsHook
from engine.pipeline import PLOTS_TRAIN, PLOTS_VAL, TRAIN_METRICS
from engine.pipeline.train import write_outputs, write_progress
from tests.engine.fixtures import make_cfg, make_runner


class ReadOutputs(Hook):
    """After each validation (after the progress hook), what a `dvc exp show` would read at that moment."""

    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        self.seen.append({"iter": runner.iter, "metrics": json.loads(TRAIN_METRICS.read_text()),
                          "train_steps": [int(r["step"]) for r in csv.DictReader(PLOTS_TRAIN.open())],
                          "val_steps": [int(r["step"]) for r in csv.DictReader(PLOTS_VAL.open())]})


def test_the_files_hold_each_validation_while_training_continues(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the stage writes metrics/ and plots/ relative to the project root
    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 6, "val_interval": 2}}, max_iters=6), tmp_path / "w")
    runner.register_hook(ProgressOutputsHook(write_progress))
    reader = ReadOutputs()
    runner.register_hook(reader)
    val = runner.train()

    assert [s["iter"] for s in reader.seen] == [2, 4, 6]
    first = reader.seen[0]
    assert first["metrics"]["iterations"] == 2 and set(first["metrics"]) >= {"loss", "mIoU", "aAcc", "mAcc"}
    assert first["metrics"]["mIoU"] == next(r["val/mIoU"] for r in runner.history if r.get("step") == 2
                                            and "val/mIoU" in r)
    assert first["train_steps"] == [1, 2] and first["val_steps"] == [2]
    assert reader.seen[1]["train_steps"] == [1, 2, 3, 4] and reader.seen[1]["val_steps"] == [2, 4]

    # The last validation's files are what the end of the stage writes (same format, same content).
    live = {p: p.read_text() for p in (TRAIN_METRICS, PLOTS_TRAIN, PLOTS_VAL)}
    write_outputs(runner, val)
    assert {p: p.read_text() for p in live} == live


def test_a_failing_write_warns_once_and_training_goes_on(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def refuse(runner: Any, metrics: dict[str, float]) -> None:
        calls.append(runner.iter)
        raise OSError(28, "No space left on device")

    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 4, "val_interval": 2}}, max_iters=4), tmp_path)
    runner.register_hook(ProgressOutputsHook(refuse))
    runner.train()
    assert calls == [2, 4] and runner.iter == 4
    assert sum("could not update the DVC progress files" in r.message for r in caplog.records) == 1
