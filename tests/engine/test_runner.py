"""Runner: checkpoint layout and retention, exact resume (bitwise on CPU), params-hash isolation."""

import json
import logging
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.checkpoint import POINTER, latest_checkpoint
from engine.config import params_hash
from engine.config.schema import TRAIN_SECTIONS, training_hash, training_identity
from tests.engine.fixtures import (
    RecordingHook,
    StopAt,
    StopTraining,
    assert_weights_equal,
    make_cfg,
    make_runner,
    weights_of,
)

CKPT_FILES = ["meta.json", "model.safetensors", "state.pt"]


def _ckpt_names(work_dir: Path) -> list[str]:
    return sorted(p.name for p in work_dir.iterdir() if p.is_dir())


def test_train_writes_checkpoints_under_the_params_hash(tmp_path: Path) -> None:
    cfg = make_cfg({"default_hooks": {"checkpoint": {"interval": 2}}})
    runner = make_runner(cfg, tmp_path)
    runner.train()
    assert runner.params_hash == training_hash(cfg) == params_hash(training_identity(cfg), TRAIN_SECTIONS)
    assert len(runner.params_hash) == 16
    assert runner.work_dir == tmp_path / runner.params_hash
    assert _ckpt_names(runner.work_dir) == ["iter_2", "iter_4"]
    for name in ("iter_2", "iter_4"):
        assert sorted(p.name for p in (runner.work_dir / name).iterdir()) == CKPT_FILES
    assert (runner.work_dir / POINTER).read_text() == "iter_4"
    assert runner.last_checkpoint == latest_checkpoint(runner.work_dir) == runner.work_dir / "iter_4"
    meta = json.loads((runner.work_dir / "iter_2" / "meta.json").read_text())
    assert meta.pop("params")["optim.lr"] == 0.1  # the training params, flat: a refused resume names what differs
    assert meta == {"params_hash": runner.params_hash, "iter": 2, "epoch": 0}
    # state.pt holds only tensors and plain containers.
    state = torch.load(runner.work_dir / "iter_4" / "state.pt", weights_only=True)
    assert set(state) == {"optim_wrapper", "schedulers", "loop", "rng", "hooks", "history"}
    assert state["loop"] == {"iter": 4, "epoch": 0, "data_epoch": 0, "data_position": 4, "nonfinite_skips": 0,
                             "consecutive_skips": 0}
    assert_weights_equal(load_file(str(runner.work_dir / "iter_4" / "model.safetensors")), weights_of(runner))


def test_epoch_checkpoints_record_completed_epochs(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2},
                    "default_hooks": {"checkpoint": {"interval": 1}}})
    runner = make_runner(cfg, tmp_path)
    runner.train()
    assert _ckpt_names(runner.work_dir) == ["epoch_1", "epoch_2"]
    meta = json.loads((runner.work_dir / "epoch_1" / "meta.json").read_text())
    del meta["params"]
    assert meta == {"params_hash": runner.params_hash, "iter": 4, "epoch": 1}


def test_max_keep_ckpts_removes_old_ones_also_across_a_resume(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"max_iters": 5}, "default_hooks": {"checkpoint": {"interval": 1,
                                                                                    "max_keep_ckpts": 2}}})
    first = make_runner(cfg, tmp_path)
    first.register_hook(RecordingHook())  # an extra hook in the first run only, before CheckpointHook
    first.register_hook(StopAt(iters=3))
    with pytest.raises(StopTraining):
        first.train()
    assert _ckpt_names(first.work_dir) == ["iter_2", "iter_3"]
    second = make_runner(cfg, tmp_path)
    second.train()
    # The kept list came back with the checkpoint (to the CheckpointHook, although the hook lists differ), so
    # iter_2, written by the first process, was removed too.
    assert _ckpt_names(second.work_dir) == ["iter_4", "iter_5"]
    assert (second.work_dir / POINTER).read_text() == "iter_5"


# ---------------------------------------------------------------------------------------------------------------
# exact resume


EPOCH_LOOP = {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 1}
RESUME_CASES = {
    # the brief's case: 4 iterations, checkpoint every 2, killed after the first; an lr schedule that keeps moving
    # after the resume, SGD momentum state, flip augmentation
    "iter": ({"train_cfg": {"max_iters": 4, "val_interval": 2},
              "param_scheduler": [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 4}],
              "default_hooks": {"checkpoint": {"interval": 2}}}, {"iters": 2}),
    # killed in the middle of the second pass over the data (4 batches per pass), with accumulation
    "iter-accumulation-mid-epoch": ({"train_cfg": {"max_iters": 4, "val_interval": 4},
                                     "optim_wrapper": {"accumulative_counts": 2},
                                     "param_scheduler": [{"type": "PolyLR", "begin": 0, "end": 4}],
                                     "default_hooks": {"checkpoint": {"interval": 3}}}, {"iters": 3}),
    # epoch loop, epoch schedule, killed after the first epoch's checkpoint
    "epoch": ({"train_cfg": EPOCH_LOOP, "optim_wrapper": {"accumulative_counts": 2},
               "param_scheduler": [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 2}],
               "default_hooks": {"checkpoint": {"interval": 1}}}, {"epochs": 1}),
    # epoch loop with iteration checkpoints, killed in the middle of the second epoch
    "epoch-mid-epoch": ({"train_cfg": EPOCH_LOOP,
                         "param_scheduler": [{"type": "LinearLR", "start_factor": 0.2, "begin": 0, "end": 8,
                                              "by_epoch": False}],
                         "default_hooks": {"checkpoint": {"interval": 3, "by_epoch": False}}}, {"iters": 6}),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path: Path, case: str) -> None:
    overrides, stop = RESUME_CASES[case]
    cfg = make_cfg(overrides)
    uninterrupted = make_runner(cfg, tmp_path / "a")
    uninterrupted.train()
    expected, expected_history = weights_of(uninterrupted), uninterrupted.history

    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(**stop))
    with pytest.raises(StopTraining):
        first.train()
    stopped_at = first.train_loop.state_dict()["iter"]
    last = latest_checkpoint(first.work_dir)

    resumed = make_runner(cfg, tmp_path / "b")
    rec = RecordingHook()
    resumed.register_hook(rec)
    resumed.train()
    assert resumed.work_dir == first.work_dir
    assert rec.events[:2] == ["before_run", "after_load_checkpoint"]
    assert [c[2] for c in rec.calls if c[0] == "before_train_iter"][0] == stopped_at  # continues, no replay
    assert resumed.last_checkpoint is not None and last is not None
    assert resumed.iter == uninterrupted.iter
    assert_weights_equal(weights_of(resumed), expected)
    # Every iteration's logged loss and lr match too (the resumed history continues the checkpoint's).
    train = [{k: v for k, v in r.items() if k in ("step", "train/loss", "train/lr")} for r in expected_history
             if "train/loss" in r]
    assert [{k: v for k, v in r.items() if k in ("step", "train/loss", "train/lr")} for r in resumed.history
            if "train/loss" in r] == train
    assert resumed.optim_wrapper.state_dict()["optimizer"]["param_groups"][0]["lr"] == pytest.approx(
        uninterrupted.optim_wrapper.state_dict()["optimizer"]["param_groups"][0]["lr"], rel=0, abs=0)


def test_a_finished_run_resumes_at_its_end_and_trains_no_further(tmp_path: Path) -> None:
    cfg = make_cfg()
    first = make_runner(cfg, tmp_path)
    first.train()
    expected = weights_of(first)
    again = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    again.register_hook(rec)
    again.train()
    assert "before_train_iter" not in rec.events and again.iter == 4
    assert_weights_equal(weights_of(again), expected)


def test_checkpoint_of_other_params_is_not_resumed(tmp_path: Path) -> None:
    first = make_runner(make_cfg(), tmp_path)
    first.train()
    other = make_runner(make_cfg({"optim": {"lr": 0.05}}), tmp_path)
    assert other.params_hash != first.params_hash and other.work_dir != first.work_dir
    rec = RecordingHook()
    other.register_hook(rec)
    other.train()
    assert "after_load_checkpoint" not in rec.events
    assert [c[1] for c in rec.calls if c[0] == "before_train_iter"] == [0, 1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.params_hash, other.params_hash])


def test_checkpoint_with_a_foreign_hash_in_the_work_dir_is_not_resumed(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_cfg()
    first = make_runner(cfg, tmp_path)
    first.train()
    meta_path = first.work_dir / "iter_4" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "params_hash": "0123456789abcdef"}))
    again = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    again.register_hook(rec)
    with caplog.at_level(logging.INFO, logger="trainline"):
        again.train()
    assert "after_load_checkpoint" not in rec.events
    assert [c[1] for c in rec.calls if c[0] == "before_train_iter"] == [0, 1, 2, 3]
    assert any("not resuming" in r.getMessage() and "0123456789abcdef" in r.getMessage() for r in caplog.records)


def test_train_returns_the_last_validation_metrics(tmp_path: Path) -> None:
    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 2, "val_interval": 1}}), tmp_path)
    metrics = runner.train()
    val_steps = [r["step"] for r in runner.history if "val/mIoU" in r]
    assert val_steps == [1, 2]
    assert set(metrics) >= {"val/mIoU", "val/aAcc", "val/mAcc"}
    assert metrics == {k: v for k, v in runner.history[-1].items() if k.startswith("val/")}
