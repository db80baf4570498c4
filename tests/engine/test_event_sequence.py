"""The exact sequence of hook events a real Runner fires: an iteration loop and an epoch loop with validation, and a
resumed run (from its checkpoint load on), each as one explicit list of (event, batch_idx, runner.iter, runner.epoch).

A RecordingHook (NORMAL) sees every event; CheckpointHook (VERY_LOW) runs after it, so `before_save_checkpoint`
follows the `after_train_iter` (or `after_train_epoch`) of the step it saves. Validation uses 4 images in batches of 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine.fixtures import RecordingHook, StopAt, StopTraining, make_cfg, make_runner


def _record(cfg: dict[str, Any], work_root: Path, stop_after: int | None = None) -> RecordingHook:
    runner = make_runner(cfg, work_root)
    rec = RecordingHook()
    runner.register_hook(rec)
    if stop_after is None:
        runner.train()
    else:
        runner.register_hook(StopAt(iters=stop_after))  # a kill right after that iteration's checkpoint
        with pytest.raises(StopTraining):
            runner.train()
    return rec


def _iter_cfg(max_iters: int, val_interval: int, checkpoint_interval: int) -> dict[str, Any]:
    return make_cfg({"data": {"val_batch_size": 2}, "train_cfg": {"max_iters": max_iters, "val_interval": val_interval},
                     "default_hooks": {"checkpoint": {"interval": checkpoint_interval}}})


def test_iteration_loop_validating_every_2_of_5_iterations(tmp_path: Path) -> None:
    # batch_idx is the global iteration; validation after iterations 2 and 4 and always after the last (5);
    # checkpoints at 2, 4 and the last, each before its step's validation.
    assert _record(_iter_cfg(5, 2, 2), tmp_path).calls == [
        ("before_run", None, 0, 0),
        ("before_train", None, 0, 0),
        ("before_train_epoch", None, 0, 0),
        ("before_train_iter", 0, 0, 0), ("after_train_iter", 0, 0, 0),
        ("before_train_iter", 1, 1, 0), ("after_train_iter", 1, 1, 0),
        ("before_save_checkpoint", None, 1, 0),
        ("before_val", None, 2, 0),
        ("before_val_epoch", None, 2, 0),
        ("before_val_iter", 0, 2, 0), ("after_val_iter", 0, 2, 0),
        ("before_val_iter", 1, 2, 0), ("after_val_iter", 1, 2, 0),
        ("after_val_epoch", None, 2, 0),
        ("after_val", None, 2, 0),
        ("before_train_iter", 2, 2, 0), ("after_train_iter", 2, 2, 0),
        ("before_train_iter", 3, 3, 0), ("after_train_iter", 3, 3, 0),
        ("before_save_checkpoint", None, 3, 0),
        ("before_val", None, 4, 0),
        ("before_val_epoch", None, 4, 0),
        ("before_val_iter", 0, 4, 0), ("after_val_iter", 0, 4, 0),
        ("before_val_iter", 1, 4, 0), ("after_val_iter", 1, 4, 0),
        ("after_val_epoch", None, 4, 0),
        ("after_val", None, 4, 0),
        ("before_train_iter", 4, 4, 0), ("after_train_iter", 4, 4, 0),
        ("before_save_checkpoint", None, 4, 0),
        ("before_val", None, 5, 0),
        ("before_val_epoch", None, 5, 0),
        ("before_val_iter", 0, 5, 0), ("after_val_iter", 0, 5, 0),
        ("before_val_iter", 1, 5, 0), ("after_val_iter", 1, 5, 0),
        ("after_val_epoch", None, 5, 0),
        ("after_val", None, 5, 0),
        ("after_train_epoch", None, 5, 0),
        ("after_train", None, 5, 0),
        ("after_run", None, 5, 0),
    ]


def test_epoch_loop_of_2_epochs_validating_after_each(tmp_path: Path) -> None:
    # 16 training images in batches of 8: 2 iterations an epoch; batch_idx counts inside the epoch, runner.iter
    # globally. In after_train_epoch runner.epoch is still the finishing epoch's 0-based index (and runner.iter
    # counts its iterations); the epoch checkpoint and the validation see the completed epoch count.
    cfg = make_cfg({"data": {"batch_size": 8, "val_batch_size": 2},
                    "train_cfg": {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 1},
                    "default_hooks": {"checkpoint": {"interval": 1}}})
    assert _record(cfg, tmp_path).calls == [
        ("before_run", None, 0, 0),
        ("before_train", None, 0, 0),
        ("before_train_epoch", None, 0, 0),
        ("before_train_iter", 0, 0, 0), ("after_train_iter", 0, 0, 0),
        ("before_train_iter", 1, 1, 0), ("after_train_iter", 1, 1, 0),
        ("after_train_epoch", None, 2, 0),
        ("before_save_checkpoint", None, 2, 0),
        ("before_val", None, 2, 1),
        ("before_val_epoch", None, 2, 1),
        ("before_val_iter", 0, 2, 1), ("after_val_iter", 0, 2, 1),
        ("before_val_iter", 1, 2, 1), ("after_val_iter", 1, 2, 1),
        ("after_val_epoch", None, 2, 1),
        ("after_val", None, 2, 1),
        ("before_train_epoch", None, 2, 1),
        ("before_train_iter", 0, 2, 1), ("after_train_iter", 0, 2, 1),
        ("before_train_iter", 1, 3, 1), ("after_train_iter", 1, 3, 1),
        ("after_train_epoch", None, 4, 1),
        ("before_save_checkpoint", None, 4, 1),
        ("before_val", None, 4, 2),
        ("before_val_epoch", None, 4, 2),
        ("before_val_iter", 0, 4, 2), ("after_val_iter", 0, 4, 2),
        ("before_val_iter", 1, 4, 2), ("after_val_iter", 1, 4, 2),
        ("after_val_epoch", None, 4, 2),
        ("after_val", None, 4, 2),
        ("after_train", None, 4, 2),
        ("after_run", None, 4, 2),
    ]


def test_resumed_run_loads_its_checkpoint_between_before_run_and_before_train(tmp_path: Path) -> None:
    cfg = _iter_cfg(6, 3, 2)
    # Killed after iteration 4's checkpoint: on_exception is its last event.
    assert _record(cfg, tmp_path, stop_after=4).calls == [
        ("before_run", None, 0, 0),
        ("before_train", None, 0, 0),
        ("before_train_epoch", None, 0, 0),
        ("before_train_iter", 0, 0, 0), ("after_train_iter", 0, 0, 0),
        ("before_train_iter", 1, 1, 0), ("after_train_iter", 1, 1, 0),
        ("before_save_checkpoint", None, 1, 0),
        ("before_train_iter", 2, 2, 0), ("after_train_iter", 2, 2, 0),
        ("before_val", None, 3, 0),
        ("before_val_epoch", None, 3, 0),
        ("before_val_iter", 0, 3, 0), ("after_val_iter", 0, 3, 0),
        ("before_val_iter", 1, 3, 0), ("after_val_iter", 1, 3, 0),
        ("after_val_epoch", None, 3, 0),
        ("after_val", None, 3, 0),
        ("before_train_iter", 3, 3, 0), ("after_train_iter", 3, 3, 0),
        ("before_save_checkpoint", None, 3, 0),
        ("on_exception", None, 3, 0),
    ]
    # The resume: before_run sees a fresh runner (iter 0); the checkpoint is loaded next (after_load_checkpoint
    # already sees iteration 4), then the loop starts at iteration 5 (batch_idx 4): nothing before it is replayed.
    rec = _record(cfg, tmp_path)
    assert rec.calls == [
        ("before_run", None, 0, 0),
        ("after_load_checkpoint", None, 4, 0),
        ("before_train", None, 4, 0),
        ("before_train_epoch", None, 4, 0),
        ("before_train_iter", 4, 4, 0), ("after_train_iter", 4, 4, 0),
        ("before_train_iter", 5, 5, 0), ("after_train_iter", 5, 5, 0),
        ("before_save_checkpoint", None, 5, 0),
        ("before_val", None, 6, 0),
        ("before_val_epoch", None, 6, 0),
        ("before_val_iter", 0, 6, 0), ("after_val_iter", 0, 6, 0),
        ("before_val_iter", 1, 6, 0), ("after_val_iter", 1, 6, 0),
        ("after_val_epoch", None, 6, 0),
        ("after_val", None, 6, 0),
        ("after_train_epoch", None, 6, 0),
        ("after_train", None, 6, 0),
        ("after_run", None, 6, 0),
    ]
    assert rec.events.index("before_run") < rec.events.index("after_load_checkpoint") < rec.events.index("before_train")
    assert dict(rec.kwargs)["after_load_checkpoint"] == {"checkpoint": ("meta", "state")}


def test_resume_between_a_checkpoint_and_its_validation_validates_first(tmp_path: Path) -> None:
    cfg = _iter_cfg(6, 3, 3)
    killed = _record(cfg, tmp_path, stop_after=3).calls  # after the checkpoint at 3, before the validation at 3
    assert killed[-4:] == [
        ("before_train_iter", 2, 2, 0), ("after_train_iter", 2, 2, 0),
        ("before_save_checkpoint", None, 2, 0),
        ("on_exception", None, 2, 0),
    ]
    # The validation the kill lost runs once the loop has started (after before_train_epoch), before iteration 4.
    assert _record(cfg, tmp_path).calls == [
        ("before_run", None, 0, 0),
        ("after_load_checkpoint", None, 3, 0),
        ("before_train", None, 3, 0),
        ("before_train_epoch", None, 3, 0),
        ("before_val", None, 3, 0),
        ("before_val_epoch", None, 3, 0),
        ("before_val_iter", 0, 3, 0), ("after_val_iter", 0, 3, 0),
        ("before_val_iter", 1, 3, 0), ("after_val_iter", 1, 3, 0),
        ("after_val_epoch", None, 3, 0),
        ("after_val", None, 3, 0),
        ("before_train_iter", 3, 3, 0), ("after_train_iter", 3, 3, 0),
        ("before_train_iter", 4, 4, 0), ("after_train_iter", 4, 4, 0),
        ("before_train_iter", 5, 5, 0), ("after_train_iter", 5, 5, 0),
        ("before_save_checkpoint", None, 5, 0),
        ("before_val", None, 6, 0),
        ("before_val_epoch", None, 6, 0),
        ("before_val_iter", 0, 6, 0), ("after_val_iter", 0, 6, 0),
        ("before_val_iter", 1, 6, 0), ("after_val_iter", 1, 6, 0),
        ("after_val_epoch", None, 6, 0),
        ("after_val", None, 6, 0),
        ("after_train_epoch", None, 6, 0),
        ("after_train", None, 6, 0),
        ("after_run", None, 6, 0),
    ]
