"""CheckpointHook: exact save points (interval, save_begin, by_epoch), retention, best checkpoints (rules, auto,
replacement, pointers, state across a resume), checkpoints without optimizer or scheduler state, filename_tmpl,
published weights, the resume fallback's order, and one real `python -m stages.train`."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from engine.checkpoint import BEST_POINTER, POINTER
from engine.errors import UserError
from engine.hooks.checkpoint_hook import CheckpointHook
from engine.hooks.hook import Hook, Priority
from engine.resume import _candidates, fast_forward_schedulers
from tests.engine.fixtures import (
    StopAt,
    StopTraining,
    assert_weights_equal,
    make_cfg,
    make_runner,
    weights_of,
)

EPOCHS = {"_delete_": True, "type": "EpochBasedTrainLoop", "val_interval": 1}  # 4 iterations an epoch


def _dirs(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.iterdir() if p.is_dir())


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def _cfg(checkpoint: dict[str, Any], max_iters: int = 4, **overrides: Any) -> dict[str, Any]:
    return make_cfg({"train_cfg": {"max_iters": max_iters, "val_interval": 1},
                     "default_hooks": {"checkpoint": checkpoint}, **overrides})


class Scripted(Hook):
    """Adds scripted scores to each validation's metrics, by loop position (so a resumed run sees the same)."""

    priority = Priority.HIGHEST

    def __init__(self, **scores: dict[int, float]) -> None:
        self.scores = scores

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        assert metrics is not None
        step = runner.epoch if runner.train_loop.by_epoch else runner.iter
        for name, by_step in self.scores.items():
            metrics[name] = by_step[step]


class BestLog(Hook):
    """After CheckpointHook: the best directories and pointers after each validation."""

    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[str], str | None, str | None]] = []

    def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
        best = [d for d in _dirs(runner.work_dir) if d.startswith("best_")]
        self.seen.append((runner.iter, best, _read(runner.work_dir / BEST_POINTER),
                          _read(runner.work_dir / POINTER)))


def _train(cfg: dict[str, Any], root: Path, *hooks: Hook) -> Any:
    runner = make_runner(cfg, root)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


# ---------------------------------------------------------------------------------------------------------------
# interval checkpoints


@pytest.mark.parametrize(("interval", "save_begin", "steps"), [
    (3, 0, [3, 6, 9]), (3, 2, [2, 5, 8]), (3, 5, [5, 8]), (1, 8, [8, 9, 10]), (4, 1, [1, 5, 9]), (-1, 0, []),
])
def test_due_steps_follow_mmengine(interval: int, save_begin: int, steps: list[int]) -> None:
    # MMEngine's every_n_train_iters(runner, interval, save_begin): step >= save_begin and
    # (step - save_begin) % interval == 0, for the 1-based step.
    hook = CheckpointHook(interval=interval, save_begin=save_begin)
    assert [s for s in range(1, 11) if hook.due(s)] == steps


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"train_cfg": {"max_iters": 7}, "default_hooks": {"checkpoint": {"interval": 3, "save_begin": 2}}},
     ["iter_2", "iter_5", "iter_7"]),
    ({"train_cfg": {"max_iters": 7}, "default_hooks": {"checkpoint": {"interval": 3, "save_last": False}}},
     ["iter_3", "iter_6"]),
    ({"train_cfg": {**EPOCHS, "max_epochs": 4}, "default_hooks": {"checkpoint": {"interval": 2, "save_begin": 1}}},
     ["epoch_1", "epoch_3", "epoch_4"]),
    # by_epoch: false in an epoch loop saves by iteration (8 iterations in 2 epochs)
    ({"train_cfg": {**EPOCHS, "max_epochs": 2}, "default_hooks": {"checkpoint": {"interval": 3, "by_epoch": False}}},
     ["iter_3", "iter_6", "iter_8"]),
])
def test_interval_checkpoints_are_saved_exactly_there(tmp_path: Path, overrides: dict[str, Any],
                                                      expected: list[str]) -> None:
    runner = _train(make_cfg(overrides), tmp_path)
    assert _dirs(runner.work_dir) == expected
    assert _read(runner.work_dir / POINTER) == expected[-1]


def test_filename_tmpl_names_the_checkpoints_and_resume_finds_them(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"max_iters": 6, "val_interval": 6},
                    "param_scheduler": [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 6}],
                    "default_hooks": {"checkpoint": {"interval": 2, "max_keep_ckpts": 2,
                                                     "filename_tmpl": "ckpt-{}.it"}}})
    expected = weights_of(_train(cfg, tmp_path / "a"))
    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(iters=4))
    with pytest.raises(StopTraining):
        first.train()
    assert _dirs(first.work_dir) == ["ckpt-2.it", "ckpt-4.it"]
    resumed = _train(cfg, tmp_path / "b")
    assert resumed.train_loop.state_dict()["iter"] == 6
    assert_weights_equal(weights_of(resumed), expected)
    assert _dirs(resumed.work_dir) == ["ckpt-4.it", "ckpt-6.it"]  # max_keep_ckpts knows the template's names
    assert _read(resumed.work_dir / POINTER) == "ckpt-6.it"


# ---------------------------------------------------------------------------------------------------------------
# best checkpoints

RISING = {1: 1.0, 2: 3.0, 3: 2.0, 4: 5.0}
FALLING = {1: 3.0, 2: 1.0, 3: 2.0, 4: 0.5}


@pytest.mark.parametrize(("checkpoint", "scores", "best_at"), [
    ({"save_best": "score", "rule": "greater"}, {"score": RISING}, [1, 2, 2, 4]),
    ({"save_best": "score", "rule": "less"}, {"score": RISING}, [1, 1, 1, 1]),
    ({"save_best": "my_loss"}, {"my_loss": FALLING}, [1, 2, 2, 4]),  # inferred: less (a loss)
    ({"save_best": "my_loss", "rule": "greater"}, {"my_loss": FALLING}, [1, 1, 1, 1]),
    ({"save_best": "score", "greater_keys": ["sco"]}, {"score": RISING}, [1, 2, 2, 4]),
    ({"save_best": "error", "less_keys": "err"}, {"error": FALLING}, [1, 2, 2, 4]),
])
def test_the_best_checkpoint_follows_the_rule(tmp_path: Path, checkpoint: dict[str, Any],
                                              scores: dict[str, dict[int, float]], best_at: list[int]) -> None:
    log = BestLog()
    runner = _train(_cfg({"interval": 4, **checkpoint}), tmp_path, Scripted(**scores), log)
    (metric,) = scores
    names = [f"best_{metric}_iter_{n}" for n in best_at]
    # After each validation exactly one best directory (the previous one removed), named by the pointer;
    # last_checkpoint only ever names the regular checkpoint (written at iteration 4, before its validation).
    assert log.seen == [(i + 1, [name], name, "iter_4" if i == 3 else None) for i, name in enumerate(names)]
    assert _dirs(runner.work_dir) == sorted([names[-1], "iter_4"])
    best = runner.work_dir / names[-1]
    state = torch.load(best / "state.pt", weights_only=True)
    assert "optim_wrapper" not in state and "schedulers" not in state  # as MMEngine: weights and position only
    (hook_state,) = [v for k, v in state["hooks"].items() if k.endswith(":CheckpointHook")]
    assert hook_state["best"][metric]["score"] == scores[metric][best_at[-1]]
    assert json.loads((best / "meta.json").read_text())["iter"] == best_at[-1]
    assert runner.last_checkpoint == runner.work_dir / "iter_4"


def test_best_checkpoints_are_not_counted_in_max_keep_ckpts(tmp_path: Path) -> None:
    runner = _train(_cfg({"interval": 1, "max_keep_ckpts": 1, "save_best": "score", "rule": "greater"}), tmp_path,
                    Scripted(score={1: 9.0, 2: 1.0, 3: 1.0, 4: 1.0}))
    assert _dirs(runner.work_dir) == ["best_score_iter_1", "iter_4"]
    assert (_read(runner.work_dir / POINTER), _read(runner.work_dir / BEST_POINTER)) == ("iter_4",
                                                                                         "best_score_iter_1")


def test_several_metrics_have_a_pointer_each(tmp_path: Path) -> None:
    runner = _train(_cfg({"save_best": ["score", "my_loss"], "rule": ["greater", "less"], "interval": 4}), tmp_path,
                    Scripted(score=RISING, my_loss={1: 3.0, 2: 4.0, 3: 1.0, 4: 2.0}))
    assert _dirs(runner.work_dir) == ["best_my_loss_iter_3", "best_score_iter_4", "iter_4"]
    assert _read(runner.work_dir / f"{BEST_POINTER}_score") == "best_score_iter_4"
    assert _read(runner.work_dir / f"{BEST_POINTER}_my_loss") == "best_my_loss_iter_3"
    assert not (runner.work_dir / BEST_POINTER).exists()


def test_auto_keeps_the_first_headline_metric(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {**EPOCHS, "max_epochs": 1}, "eval": {"headline": ["mIoU", "aAcc"]},
                    "default_hooks": {"checkpoint": {"save_best": "auto"}}})
    runner = _train(cfg, tmp_path)
    assert _dirs(runner.work_dir) == ["best_mIoU_epoch_1", "epoch_1"]
    (hook,) = [h for h in runner.hooks if isinstance(h, CheckpointHook)]
    assert (hook.metrics, hook.rules) == (["mIoU"], {"mIoU": "greater"})


def test_a_metric_the_validation_lacks_is_one_error_naming_the_key(tmp_path: Path) -> None:
    runner = make_runner(_cfg({"save_best": "mDice"}), tmp_path)
    with pytest.raises(UserError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith("default_hooks.checkpoint.save_best: the validation reported no 'mDice'; it reports ")
    assert {"aAcc", "mIoU", "mAcc"} <= set(message.split("it reports ")[1].split(", "))
    assert "\n" not in message


def test_auto_with_a_metric_whose_rule_cannot_be_inferred_names_rule(tmp_path: Path) -> None:
    runner = make_runner(_cfg({"save_best": "auto"}, eval={"headline": ["score"]}), tmp_path)
    runner.register_hook(Scripted(score=RISING))
    with pytest.raises(UserError, match=r"^default_hooks\.checkpoint\.rule: cannot tell whether larger or smaller is "
                                        r"better for 'score' \(the first headline metric, which save_best: auto "
                                        r"keeps\); set rule: greater or less$"):
        runner.train()


def test_best_scores_and_auto_choice_survive_a_resume(tmp_path: Path) -> None:
    scores = {1: 5.0, 2: 1.0, 3: 1.0, 4: 2.0}
    cfg = _cfg({"interval": 1, "save_best": "auto", "rule": "greater"}, eval={"headline": ["score"]})
    first = make_runner(cfg, tmp_path)
    for hook in (Scripted(score=scores), StopAt(iters=2)):
        first.register_hook(hook)
    with pytest.raises(StopTraining):
        first.train()
    # Another headline order now (eval is outside the params hash): the run keeps the metric it chose.
    changed = _cfg({"interval": 1, "save_best": "auto", "rule": "greater"}, eval={"headline": ["mIoU", "score"]})
    resumed = _train(changed, tmp_path, Scripted(score=scores))
    assert resumed.work_dir == first.work_dir
    # 2.0 at iteration 4 beats nothing: the resumed hook still knows the best 5.0 of iteration 1.
    assert [d for d in _dirs(resumed.work_dir) if d.startswith("best_")] == ["best_score_iter_1"]
    (hook,) = [h for h in resumed.hooks if isinstance(h, CheckpointHook)]
    assert hook.metrics == ["score"] and hook.best["score"]["score"] == 5.0


# ---------------------------------------------------------------------------------------------------------------
# checkpoints without optimizer / scheduler state

LINEAR = [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 4}]
EPOCH_LINEAR = [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 3}]


def _lrs(runner: Any) -> list[tuple[int, float]]:
    return [(r["step"], r["train/lr"]) for r in runner.history if "train/lr" in r]


@pytest.mark.parametrize(("loop", "schedule", "stop", "save", "warning"), [
    ({"max_iters": 4, "val_interval": 4}, LINEAR, {"iters": 2},
     {"save_optimizer": False, "save_param_scheduler": False},
     "was saved without the optimizer state, so the optimizer starts fresh (momentum, moments, loss scale) and "
     "without the scheduler states, so the schedulers were fast-forwarded to iteration 2"),
    ({"max_iters": 4, "val_interval": 4}, LINEAR, {"iters": 2}, {"save_optimizer": False},
     "was saved without the optimizer state, so the optimizer starts fresh (momentum, moments, loss scale)"),
    ({"max_iters": 4, "val_interval": 4}, LINEAR, {"iters": 2}, {"save_param_scheduler": False},
     "was saved without the scheduler states, so the schedulers were fast-forwarded to iteration 2"),
    ({**EPOCHS, "max_epochs": 3}, EPOCH_LINEAR, {"epochs": 1}, {"save_param_scheduler": False},
     "was saved without the scheduler states, so the schedulers were fast-forwarded to iteration 4"),
])
def test_a_checkpoint_without_optimizer_or_scheduler_state_resumes_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, loop: dict[str, Any], schedule: list[dict[str, Any]],
        stop: dict[str, int], save: dict[str, bool], warning: str) -> None:
    cfg = make_cfg({"train_cfg": loop, "param_scheduler": schedule,
                    "default_hooks": {"checkpoint": {"interval": 1, **save}}})
    reference = _train(cfg, tmp_path / "a")
    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(**stop))
    with pytest.raises(StopTraining):
        first.train()
    state = torch.load(first.last_checkpoint / "state.pt", weights_only=True)
    assert ("optim_wrapper" in state, "schedulers" in state) == (save.get("save_optimizer", True),
                                                                 save.get("save_param_scheduler", True))
    with caplog.at_level(logging.WARNING, logger="trainline"):
        resumed = _train(cfg, tmp_path / "b")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0] == f"{first.last_checkpoint} {warning}", warnings
    # The learning rate of every iteration is the uninterrupted run's (the schedule was stepped to the position).
    assert _lrs(resumed) == _lrs(reference)
    if save.get("save_optimizer", True):
        # With the optimizer state kept, fast-forwarded schedulers continue bit for bit.
        assert_weights_equal(weights_of(resumed), weights_of(reference))


class _Counting:
    def __init__(self, by_epoch: bool, need_val_args: bool = False) -> None:
        self.by_epoch, self.need_val_args, self.steps = by_epoch, need_val_args, 0

    def step(self) -> None:
        self.steps += 1


def test_fast_forward_steps_as_the_scheduler_hook_does() -> None:
    per_iter, per_epoch, plateau = _Counting(False), _Counting(True), _Counting(True, need_val_args=True)
    fast_forward_schedulers([per_iter, per_epoch, plateau], iters=10, iters_per_epoch=4, skipped=2)
    assert (per_iter.steps, per_epoch.steps, plateau.steps) == (8, 2, 0)
    in_iteration_loop = _Counting(True)
    fast_forward_schedulers([in_iteration_loop], iters=10, iters_per_epoch=None)
    assert in_iteration_loop.steps == 0  # ParamSchedulerHook steps epoch schedulers only in an epoch loop


# ---------------------------------------------------------------------------------------------------------------
# the resume fallback's order


def _fake_checkpoint(work_dir: Path, name: str, iteration: int | None, mtime: float) -> None:
    path = work_dir / name
    path.mkdir(parents=True)
    (path / "meta.json").write_text(json.dumps({"iter": iteration}) if iteration is not None else "")
    os.utime(path, (mtime, mtime))


def test_fallback_candidates_go_by_iteration_regular_ones_first(tmp_path: Path) -> None:
    _fake_checkpoint(tmp_path, "iter_30", 30, 100)  # the pointer's target
    _fake_checkpoint(tmp_path, "iter_20", 20, 200)
    _fake_checkpoint(tmp_path, "ckpt_a", 25, 50)  # a filename_tmpl name: meta.json says where it is
    _fake_checkpoint(tmp_path, "iter_10", None, 400)  # damaged meta.json: the name's number sorts it
    _fake_checkpoint(tmp_path, "best_mIoU_iter_35", 35, 900)  # newest on disk, furthest along, but a best one
    _fake_checkpoint(tmp_path, "best_loss_iter_12", 12, 300)
    (tmp_path / "published").mkdir()
    (tmp_path / POINTER).write_text("iter_30")
    assert [p.name for p in _candidates(tmp_path)] == [
        "iter_30", "ckpt_a", "iter_20", "iter_10", "best_mIoU_iter_35", "best_loss_iter_12"]


def test_a_corrupt_last_checkpoint_falls_back_to_a_regular_one_not_a_newer_best(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class StopAfterValidation(Hook):
        priority = Priority.LOWEST

        def after_val_epoch(self, runner: Any, metrics: dict[str, float] | None = None) -> None:
            if runner.iter == 5:
                raise StopTraining("stopped after the validation of iteration 5")

    scores = {1: 1.0, 2: 2.0, 3: 3.0, 4: 4.0, 5: 9.0, 6: 0.0}
    cfg = _cfg({"interval": 2, "save_best": "score", "rule": "greater"}, max_iters=6)
    reference = _train(cfg, tmp_path / "a", Scripted(score=scores))
    first = make_runner(cfg, tmp_path / "b")
    for hook in (Scripted(score=scores), StopAfterValidation()):
        first.register_hook(hook)
    with pytest.raises(StopTraining):
        first.train()
    assert _dirs(first.work_dir) == ["best_score_iter_5", "iter_2", "iter_4"]
    (first.work_dir / "iter_4" / "state.pt").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="trainline"):
        resumed = _train(cfg, tmp_path / "b", Scripted(score=scores))
    assert any("resuming from the newest intact one" in r.getMessage() and r.getMessage().endswith("iter_2")
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert_weights_equal(weights_of(resumed), weights_of(reference))
    assert _read(resumed.work_dir / BEST_POINTER) == "best_score_iter_5"


# ---------------------------------------------------------------------------------------------------------------
# published weights


def _published(runner: Any) -> Path:
    (path,) = (runner.work_dir / "published").iterdir()
    return path


def test_publish_writes_the_final_weights_named_by_their_hash(tmp_path: Path) -> None:
    runner = _train(_cfg({"interval": 2, "publish": True}), tmp_path)
    path = _published(runner)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.name == f"iter_4-{digest[:8]}.safetensors"
    assert_weights_equal(load_file(str(path)), weights_of(runner))
    with safe_open(str(path), "pt") as fh:
        assert fh.metadata() == {"params_hash": runner.params_hash, "iter": "4", "epoch": "0"}
    assert _dirs(runner.work_dir) == ["iter_2", "iter_4", "published"]


def test_published_weights_are_the_exported_ema_weights(tmp_path: Path) -> None:
    cfg = _cfg({"interval": 4, "published_keys": ["state_dict"]},
               custom_hooks=[{"type": "EMAHook", "momentum": 0.5, "priority": "LOWEST"}])
    runner = _train(cfg, tmp_path)
    exported = tmp_path / "model.safetensors"
    runner.save_weights(exported)  # what the train stage writes to models/model.safetensors
    published = load_file(str(_published(runner)))
    assert_weights_equal(published, load_file(str(exported)))
    raw = load_file(str(runner.work_dir / "iter_4" / "model.safetensors"))
    assert any(not torch.equal(published[k], raw[k]) for k in raw)  # the EMA, not the raw weights
    with safe_open(str(_published(runner)), "pt") as fh:
        assert not fh.metadata()  # published_keys without meta


# ---------------------------------------------------------------------------------------------------------------
# end to end


@pytest.mark.slow
def test_a_real_training_writes_a_best_checkpoint_and_its_pointer(tmp_path: Path) -> None:
    from tests.engine.trainer_processes import prepared_project, work_dir

    project = prepared_project(tmp_path, {
        "train_cfg": {"max_iters": 6, "val_interval": 2},
        "default_hooks": {"checkpoint": {"type": "CheckpointHook", "interval": 3, "save_best": "mIoU",
                                         "publish": True}}})
    result = project.run(sys.executable, "-m", "stages.train")
    assert "Traceback" not in result.stderr
    root = work_dir(project)
    best = (root / BEST_POINTER).read_text()
    assert best.startswith("best_mIoU_iter_") and (root / best / "model.safetensors").is_file()
    assert (root / POINTER).read_text() == "iter_6"
    assert sorted(d for d in _dirs(root) if not d.startswith(("best_", "."))) == ["iter_3", "iter_6", "published"]
    (published,) = (root / "published").iterdir()
    assert published.name == f"iter_6-{hashlib.sha256(published.read_bytes()).hexdigest()[:8]}.safetensors"
    assert_weights_equal(load_file(str(published)), load_file(str(project.path / "models" / "model.safetensors")))


def test_stop_checkpoint_follows_the_hooks_name_and_keep_rules(tmp_path: Path) -> None:
    """A requested stop saves through the CheckpointHook: `filename_tmpl` names it, max_keep_ckpts counts it."""
    from engine import signals
    from engine.hooks.hook import Hook, Priority
    from tests.engine.fixtures import make_cfg, make_runner

    class StopAfter(Hook):
        priority = Priority.LOWEST

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if runner.iter + 1 == 5:
                signals.request_stop()

    cfg = make_cfg({"default_hooks": {"checkpoint": {"interval": 2, "max_keep_ckpts": 2,
                                                     "filename_tmpl": "step_{}"}},
                    "train_cfg": {"max_iters": 8, "val_interval": 8}}, max_iters=8)
    runner = make_runner(cfg, tmp_path)
    runner.register_hook(StopAfter())
    with signals.stop_on_signals(), pytest.raises(signals.TrainingInterrupted) as stopped:
        runner.train()
    assert stopped.value.checkpoint == runner.work_dir / "step_5"
    kept = sorted(p.name for p in runner.work_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert kept == ["step_4", "step_5"]  # step_2 pruned: the stop checkpoint counts in max_keep_ckpts
    assert (runner.work_dir / "last_checkpoint").read_text().strip() == "step_5"
