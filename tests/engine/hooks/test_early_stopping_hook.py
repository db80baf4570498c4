"""EarlyStoppingHook: rule inference, the exact stop for scripted scores in both loop kinds, state across a resume."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from engine.errors import UserError
from engine.hooks import HOOKS
from engine.hooks.early_stopping_hook import EarlyStoppingHook, infer_rule
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import RecordingHook, StopAt, StopTraining, make_cfg, make_runner


@pytest.mark.parametrize(("monitor", "rule"), [
    ("mIoU", "greater"), ("aAcc", "greater"), ("ACC", "greater"), ("val_accuracy", "greater"),
    ("mDice", "greater"), ("loss", "less"), ("loss_ce", "less"), ("IoU.circle", None), ("score", None),
])
def test_rule_is_inferred_from_the_name(monitor: str, rule: str | None) -> None:
    assert infer_rule(monitor) == rule


def _run(hook: EarlyStoppingHook, scores: list[float]) -> int | None:
    """1-based index of the validation after which the hook stops, or None."""
    runner = SimpleNamespace(train_loop=SimpleNamespace(stop_training=False), logger=logging.getLogger("t"), iter=0)
    for i, score in enumerate(scores, 1):
        hook.after_val_epoch(runner, {hook.monitor: score})
        if runner.train_loop.stop_training:
            return i
    return None


@pytest.mark.parametrize(("kwargs", "scores", "stop"), [
    # best + min_delta reached exactly counts as an improvement: 1.25 and 1.5 improve, 1.5 and 1.7 wait
    ({"monitor": "mIoU", "min_delta": 0.25, "patience": 2}, [1.0, 1.25, 1.5, 1.5, 1.7, 9.0], 5),
    # an improvement resets the wait count
    ({"monitor": "mIoU", "min_delta": 0.25, "patience": 2}, [1.0, 1.0, 1.5, 1.5, 2.0, 2.0, 2.0], 7),
    # with min_delta 0 an equal score still counts as an improvement; only a worse one waits
    ({"monitor": "mIoU", "min_delta": 0.0, "patience": 1}, [1.0, 2.0, 2.0, 1.5], 4),
    # less is better for a loss: 0.8 is within min_delta of 1.0, so it waits
    ({"monitor": "loss", "min_delta": 0.25, "patience": 2}, [1.0, 0.5, 0.3, 0.4, 0.1], 4),
    ({"monitor": "score", "rule": "less", "patience": 1, "min_delta": 0.0}, [3.0, 2.0, 2.5], 3),
    ({"monitor": "mIoU", "stopping_threshold": 50.0, "patience": 10}, [10.0, 50.0, 50.5], 3),
    ({"monitor": "mIoU", "patience": 10}, [10.0, math.nan], 2),
    ({"monitor": "mIoU", "patience": 10, "check_finite": False}, [10.0, math.inf, 11.0], None),
])
def test_stops_exactly_where_mmengine_does(kwargs: dict[str, Any], scores: list[float], stop: int | None) -> None:
    assert _run(EarlyStoppingHook(**kwargs), scores) == stop


def test_threshold_and_best_score_are_recorded() -> None:
    hook = EarlyStoppingHook("mIoU", stopping_threshold=50.0)
    assert _run(hook, [10.0, 60.0]) == 2 and hook.best_score == 60.0
    hook = EarlyStoppingHook("mIoU", patience=3)
    _run(hook, [10.0, 10.05, 9.0])
    assert (hook.best_score, hook.wait_count) == (10.0, 2)


def test_missing_monitor_warns_once_or_raises_when_strict(caplog: pytest.LogCaptureFixture) -> None:
    runner = SimpleNamespace(train_loop=SimpleNamespace(stop_training=False), logger=logging.getLogger("t"), iter=0)
    hook = EarlyStoppingHook("mDice")
    with caplog.at_level(logging.WARNING, logger="t"):
        hook.after_val_epoch(runner, {"mIoU": 1.0})
        hook.after_val_epoch(runner, {"mIoU": 1.0})
    assert [r.getMessage() for r in caplog.records] == [
        "EarlyStoppingHook: no 'mDice' among the validation metrics (mIoU); not stopping early"]
    assert not runner.train_loop.stop_training
    with pytest.raises(UserError, match=r"no 'mDice' to monitor \(it reports mIoU\); fix monitor or set strict"):
        EarlyStoppingHook("mDice", strict=True).after_val_epoch(runner, {"mIoU": 1.0})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"monitor": "score"}, "monitor 'score': cannot tell whether larger or smaller is better"),
    ({"monitor": ""}, "monitor must be the name of a validation metric"),
    ({"monitor": "mIoU", "rule": "bigger"}, "rule must be 'greater' or 'less', got 'bigger'"),
    ({"monitor": "mIoU", "patience": 0}, "patience must be a whole number >= 1"),
    ({"monitor": "mIoU", "min_delta": -0.1}, "min_delta must be a number >= 0"),
    ({"monitor": "mIoU", "stopping_threshold": "high"}, "stopping_threshold must be a number or null"),
    ({"monitor": "mIoU", "strict": "no"}, "strict must be true or false"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EarlyStoppingHook(**kwargs)


def test_registered_with_mmengine_defaults() -> None:
    hook = HOOKS["EarlyStoppingHook"]("mIoU")
    assert (hook.rule, hook.patience, hook.min_delta, hook.strict, hook.check_finite, hook.stopping_threshold) == (
        "greater", 5, 0.1, False, True, None)
    assert hook.priority == Priority.LOWEST


# ---------------------------------------------------------------------------------------------------------------
# in the runner: both loop kinds honour the stop; the state survives a resume

# The validation after iteration/epoch k scores SCORES[k]: improvements up to 3, then three validations without
# (patience 3, min_delta 0.1): stop after 6.
SCORES = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.05, 5: 2.0, 6: 3.09, 7: 9.0, 8: 9.0, 9: 9.0, 10: 9.0}


class _Scripted(Hook):
    """Replaces the validation's metrics by a score scripted by the loop position (so a resumed run sees the same)."""

    priority = Priority.HIGHEST

    def __init__(self, scores: dict[int, float] = SCORES) -> None:
        self.scores = scores

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        assert metrics is not None
        metrics["score"] = self.scores[runner.epoch if runner.train_loop.by_epoch else runner.iter]


def _cfg(loop: dict[str, Any], checkpoint: int = 100) -> dict[str, Any]:
    return make_cfg({"train_cfg": {"_delete_": True, **loop},
                     "custom_hooks": [{"type": "EarlyStoppingHook", "monitor": "score", "rule": "greater",
                                       "patience": 3, "min_delta": 0.1}],
                     "default_hooks": {"checkpoint": {"interval": checkpoint}}})


def _train(cfg: dict[str, Any], work: Path, *extra: Hook, scores: dict[int, float] = SCORES,
           ) -> tuple[Any, RecordingHook]:
    runner = make_runner(cfg, work)
    rec = RecordingHook()
    for hook in (_Scripted(scores), rec, *extra):
        runner.register_hook(hook)
    runner.train()
    return runner, rec


def test_iteration_loop_stops_after_the_sixth_validation(tmp_path: Path) -> None:
    runner, rec = _train(_cfg({"type": "IterBasedTrainLoop", "max_iters": 10, "val_interval": 1}), tmp_path)
    assert runner.iter == 6 and rec.events.count("before_train_iter") == 6
    assert rec.events[-3:] == ["after_train_epoch", "after_train", "after_run"]
    assert [r["step"] for r in runner.history if "val/score" in r] == [1, 2, 3, 4, 5, 6]


def test_epoch_loop_stops_after_the_sixth_epoch(tmp_path: Path) -> None:
    runner, rec = _train(_cfg({"type": "EpochBasedTrainLoop", "max_epochs": 10, "val_interval": 1}), tmp_path)
    assert runner.epoch == 6 and rec.events.count("before_train_epoch") == 6
    assert runner.iter == 6 * 4  # 16 images, batch 4


def test_a_resumed_run_keeps_the_wait_count(tmp_path: Path) -> None:
    # Validations after iterations 2, 4, 6, 8, 10; a checkpoint after 5 (not a validation step) holds best 1.0 and
    # one validation waited; the run is killed after iteration 6, before its validation.
    scores = {2: 1.0, 4: 1.05, 6: 1.08, 8: 1.09, 10: 1.095}
    cfg = _cfg({"type": "IterBasedTrainLoop", "max_iters": 10, "val_interval": 2}, checkpoint=5)
    uninterrupted, _ = _train(cfg, tmp_path / "a", scores=scores)
    assert uninterrupted.iter == 8
    with pytest.raises(StopTraining):
        _train(cfg, tmp_path / "b", StopAt(iters=6), scores=scores)
    runner, rec = _train(cfg, tmp_path / "b", scores=scores)
    assert "after_load_checkpoint" in rec.events
    (hook,) = [h for h in runner.hooks if isinstance(h, EarlyStoppingHook)]
    # A fresh count would take 1.08 as the best and train on to iteration 10.
    assert runner.iter == 8 and (hook.best_score, hook.wait_count) == (1.0, 3)


def test_state_round_trips() -> None:
    hook = EarlyStoppingHook("loss")
    _run(hook, [2.0, 1.95])
    fresh = EarlyStoppingHook("loss")
    fresh.load_state_dict(hook.state_dict())
    assert (fresh.best_score, fresh.wait_count) == (2.0, 1)
    assert EarlyStoppingHook("loss").state_dict() == {"best_score": math.inf, "wait_count": 0}
