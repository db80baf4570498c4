"""LoggerHook: the partial interval window survives a resume, scalars.jsonl holds each step once, a progress line only
in a terminal, and `log_metric_by_epoch`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from engine.hooks.logger_hook import LoggerHook
from tests.engine.fixtures import StopAt, StopTraining, make_cfg, make_runner


def _logger(runner) -> LoggerHook:
    return next(h for h in runner.hooks if isinstance(h, LoggerHook))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_times(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith(("time", "throughput"))} for r in records]


def test_a_resume_mid_interval_logs_the_same_means_and_each_step_once(tmp_path: Path) -> None:
    cfg = make_cfg({"default_hooks": {"logger": {"interval": 3}, "checkpoint": {"interval": 2}},
                    "train_cfg": {"max_iters": 6, "val_interval": 3}})
    reference = make_runner(cfg, tmp_path / "a")
    reference.train()
    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(iters=5))  # checkpoint at 4 holds iteration 4 of the 4-6 window
    with pytest.raises(StopTraining):
        first.train()
    resumed = make_runner(cfg, tmp_path / "b")
    resumed.train()
    expected = _without_times(reference.history)
    assert _without_times(resumed.history) == expected
    assert [r["step"] for r in expected if "train/loss" in r] == [3, 6]
    assert _without_times(_lines(resumed.work_dir / "scalars.jsonl")) == expected
    assert _without_times(_lines(reference.work_dir / "scalars.jsonl")) == expected


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_line_only_in_a_terminal(tmp_path: Path, terminal: bool) -> None:
    runner = make_runner(make_cfg({"default_hooks": {"logger": {"interval": 2}}}), tmp_path)
    stream = _Terminal() if terminal else io.StringIO()
    _logger(runner).stream = stream
    runner.train()
    text = stream.getvalue()
    if not terminal:
        assert text == ""
        return
    frames = [f for f in text.split("\r\033[K") if f]
    assert frames[-1].startswith("|########################|  [4/4]") and frames[-1].endswith("\n")
    assert "loss " in frames[-1] and "lr 0.1" in frames[-1] and "eta " in frames[-1]


def test_progress_bar_can_be_forced_off(tmp_path: Path) -> None:
    runner = make_runner(make_cfg({"default_hooks": {"logger": {"progress_bar": False}}}), tmp_path)
    _logger(runner).stream = stream = _Terminal()
    runner.train()
    assert stream.getvalue() == ""


def test_log_metric_by_epoch_puts_val_metrics_on_the_epoch_axis(tmp_path: Path) -> None:
    loop = {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 1}
    by_iter = make_runner(make_cfg({"train_cfg": loop}), tmp_path / "a")
    by_iter.train()
    by_epoch = make_runner(make_cfg({"train_cfg": loop, "default_hooks": {"logger": {"log_metric_by_epoch": True}}}),
                           tmp_path / "b")
    by_epoch.train()
    assert [r["step"] for r in by_iter.history if "val/mIoU" in r] == [4, 8]
    assert [r["step"] for r in by_epoch.history if "val/mIoU" in r] == [1, 2]


def test_bad_progress_bar_value_is_refused_with_its_key() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make_cfg({"default_hooks": {"logger": {"progress_bar": "sometimes"}}})
    assert info.value.problems[0].startswith("default_hooks.logger.progress_bar:")


def test_throughput_counts_every_micro_batch_sample_over_the_window_time(tmp_path: Path) -> None:
    # 16 training images, batch 4, 2 micro-batches per iteration: 8 samples an iteration, logged every 2.
    cfg = make_cfg({"default_hooks": {"logger": {"interval": 2}}, "optim_wrapper": {"accumulative_counts": 2},
                    "train_cfg": {"max_iters": 4, "val_interval": 4}}, max_iters=4)
    runner = make_runner(cfg, tmp_path)
    runner.train()
    records = [r for r in runner.history if "train/loss" in r]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        # train/time is the window's mean iteration time: samples / (mean time * iterations) = throughput
        assert record["train/throughput"] * record["train/time"] * 2 == pytest.approx(16, rel=1e-9)


@pytest.mark.parametrize(("batch", "expected"), [
    ((torch.zeros(5, 3), torch.zeros(5)), 5),                     # (images, labels): the example, the digits toy
    ({"tokens": torch.zeros(7, 12), "lengths": [12] * 7}, 7),     # a dict batch
    ([["no tensor"], (torch.zeros(3, 2),)], 3),                   # nested: depth-first to the first tensor
    (torch.tensor(1.0), 1),
    (["a", "b"], 0),                                               # nothing to count: data.batch_size is used
])
def test_batch_samples_is_the_length_of_the_first_tensor(batch, expected: int) -> None:
    from engine.hooks.logger_hook import batch_samples

    assert batch_samples(batch) == expected
