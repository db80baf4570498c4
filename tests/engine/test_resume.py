"""Resume that is never silent: corrupt state falls back to the newest intact checkpoint, `resume: false | <path>`,
`load_from` (strict and not), observing hook settings outside the params hash, a full disk during a checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.checkpoint import POINTER
from engine.errors import UserError
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import (
    RecordingHook,
    StopAt,
    StopTraining,
    assert_weights_equal,
    make_cfg,
    make_runner,
    weights_of,
)

EVERY_ITER = {"default_hooks": {"checkpoint": {"interval": 1}}}


def _stopped_run(tmp_path: Path, at: int = 3, overrides: dict | None = None):
    """A run killed right after the checkpoint of iteration `at` (checkpoints at every iteration)."""
    cfg = make_cfg({**EVERY_ITER, **(overrides or {})})
    runner = make_runner(cfg, tmp_path)
    runner.register_hook(StopAt(iters=at))
    with pytest.raises(StopTraining):
        runner.train()
    return cfg, runner.work_dir


def _uninterrupted(tmp_path: Path, cfg: dict) -> dict[str, torch.Tensor]:
    runner = make_runner(cfg, tmp_path / "reference")
    runner.train()
    return weights_of(runner)


def _resume(cfg: dict, tmp_path: Path) -> tuple[RecordingHook, object]:
    runner = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    runner.register_hook(rec)
    runner.train()
    return rec, runner


def _first_iter(rec: RecordingHook) -> int:
    return [c[1] for c in rec.calls if c[0] == "before_train_iter"][0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", ["truncated weights", "truncated state", "empty meta", "pointer to missing"])
def test_corrupt_last_checkpoint_falls_back_to_the_newest_intact_one(tmp_path: Path, damage: str,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    cfg, work_dir = _stopped_run(tmp_path / "run")
    bad = work_dir / "iter_3"
    if damage == "truncated weights":
        _truncate(bad / "model.safetensors")
    elif damage == "truncated state":
        _truncate(bad / "state.pt")
    elif damage == "empty meta":
        (bad / "meta.json").write_text("")
    else:
        shutil.rmtree(bad)
    with caplog.at_level(logging.WARNING, logger="trainline"):
        rec, runner = _resume(cfg, tmp_path / "run")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(bad) in w and "iter_2" in w for w in warnings), warnings
    assert _first_iter(rec) == 2  # continued after iteration 2: no fresh start
    assert_weights_equal(weights_of(runner), _uninterrupted(tmp_path, cfg))
    # Training continued and wrote that iteration's checkpoint afresh.
    assert json.loads((bad / "meta.json").read_text())["iter"] == 3


def test_every_checkpoint_corrupt_starts_over_with_a_warning(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    cfg, work_dir = _stopped_run(tmp_path, at=2)
    for name in ("iter_1", "iter_2"):
        (work_dir / name / "meta.json").write_text("")
    with caplog.at_level(logging.WARNING, logger="trainline"):
        rec, _ = _resume(cfg, tmp_path)
    assert _first_iter(rec) == 0
    assert any("no intact checkpoint" in r.getMessage() for r in caplog.records)


def test_resume_false_starts_over(tmp_path: Path) -> None:
    cfg, _ = _stopped_run(tmp_path)
    rec, _ = _resume({**cfg, "resume": False}, tmp_path)
    assert "after_load_checkpoint" not in rec.events and _first_iter(rec) == 0


def test_resume_from_an_explicit_checkpoint(tmp_path: Path) -> None:
    cfg, work_dir = _stopped_run(tmp_path / "run")
    rec, runner = _resume({**cfg, "resume": str(work_dir / "iter_1")}, tmp_path / "other-root")
    assert _first_iter(rec) == 1
    assert_weights_equal(weights_of(runner), _uninterrupted(tmp_path, cfg))


def test_explicit_resume_of_other_params_names_the_differing_keys(tmp_path: Path) -> None:
    _, work_dir = _stopped_run(tmp_path / "run")
    other = make_cfg({**EVERY_ITER, "optim": {"lr": 0.05}, "resume": str(work_dir / "iter_2")})
    with pytest.raises(UserError, match=r"resume: .*iter_2 was trained with other params \(optim\.lr: 0\.1 -> 0\.05\)"):
        make_runner(other, tmp_path / "run").train()


def test_explicit_resume_of_a_corrupt_checkpoint_is_refused_not_skipped(tmp_path: Path) -> None:
    cfg, work_dir = _stopped_run(tmp_path)
    _truncate(work_dir / "iter_2" / "state.pt")
    with pytest.raises(UserError, match=r"resume: .*iter_2 is not a usable checkpoint directory"):
        make_runner({**cfg, "resume": str(work_dir / "iter_2")}, tmp_path).train()


def test_observing_hook_settings_resume_the_same_training(tmp_path: Path) -> None:
    cfg, work_dir = _stopped_run(tmp_path)
    changed = make_cfg({"default_hooks": {"checkpoint": {"interval": 2, "max_keep_ckpts": 1},
                                          "logger": {"interval": 3}}})
    rec, runner = _resume(changed, tmp_path)
    assert runner.work_dir == work_dir and _first_iter(rec) == 3
    shaping = make_cfg({**EVERY_ITER, "default_hooks": {"sampler_seed": None}})
    assert make_runner(shaping, tmp_path).params_hash != runner.params_hash


def test_load_from_takes_only_the_weights(tmp_path: Path) -> None:
    cfg, work_dir = _stopped_run(tmp_path / "run")
    source = work_dir / "iter_3"
    fresh = make_cfg({"load_from": str(source), "optim": {"lr": 0.01}})
    runner = make_runner(fresh, tmp_path / "finetune")
    rec = RecordingHook()
    runner.register_hook(rec)
    from safetensors.torch import load_file

    loaded = {}

    class Peek(RecordingHook):
        def before_train(self, runner):  # the weights in place when training starts
            loaded.update({k: v.clone() for k, v in weights_of(runner).items()})

    runner.register_hook(Peek())
    runner.train()
    assert _first_iter(rec) == 0  # weights only: the position is not taken
    assert_weights_equal(loaded, load_file(str(source / "model.safetensors")))


def test_load_from_another_architecture_strict_names_the_keys(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 3)
    file = tmp_path / "other.safetensors"
    save_file({"weight": model.weight.detach(), "encoders.0.0.weight": torch.zeros(1)}, str(file))
    cfg = make_cfg({"load_from": str(file), "load_strict": True})
    with pytest.raises(UserError) as info:
        make_runner(cfg, tmp_path).train()
    text = str(info.value)
    assert text.startswith(f"load_from: {file}: the weights do not fit the model (missing ")
    assert "unexpected 1: weight" in text and "mis-shaped 1: encoders.0.0.weight" in text
    assert "load_strict: false" in text and "\n" not in text


def test_load_from_non_strict_loads_what_fits_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg, work_dir = _stopped_run(tmp_path / "run")
    from safetensors.torch import load_file

    weights = load_file(str(work_dir / "iter_3" / "model.safetensors"))
    kept = dict(list(weights.items())[:3])
    file = tmp_path / "partial.safetensors"
    save_file({**kept, "head.extra": torch.ones(2)}, str(file))
    with caplog.at_level(logging.WARNING, logger="trainline"):
        make_runner(make_cfg({"load_from": str(file)}), tmp_path / "ft").train()
    assert any("loaded 3 of" in r.getMessage() and "unexpected 1: head.extra" in r.getMessage()
               for r in caplog.records)


def test_check_refuses_missing_resume_and_load_from_paths(tmp_path: Path) -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make_cfg({"resume": str(tmp_path / "nope"), "load_from": str(tmp_path / "w.safetensors")})
    lines = info.value.problems
    assert any(p.startswith("resume: ") and "not a checkpoint directory" in p for p in lines)
    assert any(p.startswith("load_from: ") and "not found" in p for p in lines)


def test_disk_full_during_a_checkpoint_names_the_dir_and_keeps_the_previous(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.checkpoint as checkpoint

    cfg = make_cfg(EVERY_ITER)
    runner = make_runner(cfg, tmp_path)
    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint's state.pt: what torch reports when the disk is full
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 123 vs 456")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    monkeypatch.setattr(checkpoint, "_FULL_BYTES", 2**62)  # every disk looks full: the message path is taken
    with pytest.raises(UserError) as info:
        runner.train()
    text = str(info.value)
    assert text.startswith(f"no space left in {runner.work_dir} (")
    assert "MB free) while writing checkpoint iter_3" in text
    assert "the previous checkpoint iter_2 is intact" in text
    assert (runner.work_dir / POINTER).read_text() == "iter_2"
    assert not any(p.name.startswith(".") for p in runner.work_dir.iterdir())  # no half-written temp dir left
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    rec, resumed = _resume(cfg, tmp_path)
    assert _first_iter(rec) == 2
    assert json.loads((resumed.work_dir / "iter_4" / "meta.json").read_text())["iter"] == 4


class KillBeforeValidation(Hook):
    """Raises when the validation after step `at` starts: the checkpoint of that step exists, its validation not."""

    priority = Priority.HIGHEST

    def __init__(self, at: int) -> None:
        self.at = at

    def before_val(self, runner) -> None:
        count = runner.epoch if runner.train_loop.by_epoch else runner.iter  # completed epochs or iterations
        if count == self.at:
            raise StopTraining(f"killed before the validation of {self.at}")


def _val_steps(history: list[dict]) -> list[int]:
    return [r["step"] for r in history if any(k.startswith("val/") for k in r)]


@pytest.mark.parametrize("loop", ["iter", "epoch"])
@pytest.mark.parametrize("at", [2, 4])  # a mid-run validation and the final one
def test_a_run_killed_before_a_validation_validates_on_resume(tmp_path: Path, loop: str, at: int) -> None:
    overrides: dict = {"train_cfg": {"max_iters": 4, "val_interval": 2}, **EVERY_ITER}
    if loop == "epoch":
        overrides = {"train_cfg": {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 4,
                                   "val_interval": 2}, "data": {"batch_size": 8}, **EVERY_ITER}
    cfg = make_cfg(overrides)
    reference = make_runner(cfg, tmp_path / "reference")
    expected_metrics = reference.train()
    runner = make_runner(cfg, tmp_path / "run")
    runner.register_hook(KillBeforeValidation(at))
    with pytest.raises(StopTraining):
        runner.train()
    resumed = make_runner(cfg, tmp_path / "run")
    metrics = resumed.train()
    assert _val_steps(resumed.history) == _val_steps(reference.history)
    assert metrics == expected_metrics
    assert_weights_equal(weights_of(resumed), weights_of(reference))


def test_a_validation_already_in_the_checkpoint_is_not_repeated(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"max_iters": 4, "val_interval": 2}})
    first = make_runner(cfg, tmp_path)
    first.train()
    first.save_checkpoint("iter_4")  # written after the final validation: its history holds it
    again = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    again.register_hook(rec)
    again.train()
    assert "before_val" not in rec.events and _val_steps(again.history) == [2, 4]
