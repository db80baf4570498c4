"""Train loops: the exact event sequence, batch_idx and counters, accumulation windows, non-finite losses."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.checkpoint import latest_checkpoint, load_checkpoint
from engine.hooks.hook import Hook, Priority
from engine.loops import NonFiniteLossError
from tests.engine.fixtures import (
    NUM_TRAIN,
    RecordingHook,
    WindowRecorder,
    assert_weights_close,
    count_optimizer_steps,
    make_cfg,
    make_runner,
    replay_sgd,
    weights_of,
)

VAL_BLOCK = ["before_val", "before_val_epoch", "before_val_iter", "after_val_iter", "after_val_epoch", "after_val"]
EPOCH_LOOP = {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 1}


def _val_block(iter_: int, epoch: int) -> list[tuple[str, Any, int, int]]:
    # 4 validation images in one batch of 4: one val iteration with batch_idx 0.
    return [(e, 0 if e.endswith("_iter") else None, iter_, epoch) for e in VAL_BLOCK]


def _train_iter(batch_idx: int, iter_: int, epoch: int) -> list[tuple[str, Any, int, int]]:
    return [("before_train_iter", batch_idx, iter_, epoch), ("after_train_iter", batch_idx, iter_, epoch)]


def test_iter_loop_event_sequence(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"max_iters": 4, "val_interval": 2},
                    "default_hooks": {"checkpoint": {"interval": 2}}})
    runner = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    runner.register_hook(rec)
    runner.train()
    # (event, batch_idx, runner.iter, runner.epoch) at each call; batch_idx is the global iteration; the checkpoint
    # (CheckpointHook runs after this NORMAL hook) is written before that step's validation.
    expected = [("before_run", None, 0, 0), ("before_train", None, 0, 0), ("before_train_epoch", None, 0, 0)]
    expected += _train_iter(0, 0, 0) + _train_iter(1, 1, 0) + [("before_save_checkpoint", None, 1, 0)]
    expected += _val_block(2, 0)
    expected += _train_iter(2, 2, 0) + _train_iter(3, 3, 0) + [("before_save_checkpoint", None, 3, 0)]
    expected += _val_block(4, 0)
    expected += [("after_train_epoch", None, 4, 0), ("after_train", None, 4, 0), ("after_run", None, 4, 0)]
    assert rec.calls == expected
    kwargs = dict(rec.kwargs)
    assert kwargs["before_train_iter"] == {"batch_idx": 3, "data_batch": 1}  # a window of one micro-batch
    assert kwargs["after_train_iter"] == {"batch_idx": 3, "data_batch": 1, "outputs": ("loss", "loss_ce")}
    assert kwargs["after_val_epoch"]["metrics"][:3] == ("Acc.background", "Acc.circle", "Acc.square")
    assert kwargs["before_save_checkpoint"] == {"checkpoint": ("meta", "state")}
    assert runner.iter == 4 and runner.epoch == 0


def test_epoch_loop_event_sequence(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": EPOCH_LOOP, "default_hooks": {"checkpoint": {"interval": 1}}})
    runner = make_runner(cfg, tmp_path)
    rec = RecordingHook()
    runner.register_hook(rec)
    runner.train()
    batches = NUM_TRAIN // cfg["data"]["batch_size"]
    expected = [("before_run", None, 0, 0), ("before_train", None, 0, 0)]
    for epoch in range(2):
        start = epoch * batches
        expected.append(("before_train_epoch", None, start, epoch))
        for i in range(batches):  # batch_idx counts inside the epoch, runner.iter globally
            expected += _train_iter(i, start + i, epoch)
        # Inside after_train_epoch runner.epoch is still the 0-based index of the finishing epoch.
        expected += [("after_train_epoch", None, start + batches, epoch),
                     ("before_save_checkpoint", None, start + batches, epoch)]
        expected += _val_block(start + batches, epoch + 1)
    expected += [("after_train", None, 8, 2), ("after_run", None, 8, 2)]
    assert rec.calls == expected
    assert sorted(p.name for p in runner.work_dir.iterdir()) == ["epoch_1", "epoch_2", "last_checkpoint",
                                                                         "scalars.jsonl"]


def test_epoch_loop_val_interval_and_val_begin(tmp_path: Path) -> None:
    loop = dict(EPOCH_LOOP, max_epochs=5, val_interval=2, val_begin=3)
    runner = make_runner(make_cfg({"train_cfg": loop, "default_hooks": {"checkpoint": {"interval": -1}}}), tmp_path)
    rec = RecordingHook()
    runner.register_hook(rec)
    runner.train()
    # epochs 1..5: validate when epoch >= 3 and (epoch % 2 == 0 or it is the last): epochs 4 and 5.
    assert [epoch for event, _, _, epoch in rec.calls if event == "before_val"] == [4, 5]


def test_iter_loop_always_validates_after_the_last_iteration(tmp_path: Path) -> None:
    runner = make_runner(make_cfg({"train_cfg": {"max_iters": 5, "val_interval": 2}}), tmp_path)
    rec = RecordingHook()
    runner.register_hook(rec)
    runner.train()
    assert [it for event, _, it, _ in rec.calls if event == "before_val"] == [2, 4, 5]


# ---------------------------------------------------------------------------------------------------------------
# accumulation windows in the epoch loop


@pytest.mark.parametrize(("batch_size", "k", "sizes"), [
    (4, 3, [3, 1]),     # 4 batches per epoch: one full window, then a short one
    (4, 2, [2, 2]),     # windows end exactly at the end of the data
    (3, 2, [2, 2, 2]),  # 6 batches (the last holds one image)
    (4, 4, [4]),
])
def test_epoch_loop_accumulation_windows(tmp_path: Path, batch_size: int, k: int, sizes: list[int]) -> None:
    cfg = make_cfg({"train_cfg": EPOCH_LOOP, "data": {"batch_size": batch_size},
                    "optim_wrapper": {"accumulative_counts": k}, "default_hooks": {"checkpoint": {"interval": -1}}})
    runner = make_runner(cfg, tmp_path)
    initial = weights_of(runner)
    windows = WindowRecorder()
    runner.register_hook(windows)
    steps = count_optimizer_steps(runner)
    runner.train()
    batches = math.ceil(NUM_TRAIN / batch_size)
    per_epoch = math.ceil(batches / k)
    assert len(sizes) == per_epoch
    assert runner.train_loop.iters_per_epoch == per_epoch and runner.max_iters == 2 * per_epoch
    assert runner.iter == 2 * per_epoch and steps[0] == 2 * per_epoch  # one optimizer step per iteration
    assert [len(w) for w in windows.windows] == sizes * 2
    assert windows.batch_idx == list(range(per_epoch)) * 2
    # Each step applies the mean gradient of its window, a short window included.
    assert_weights_close(weights_of(runner), replay_sgd(cfg, initial, windows.windows), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# non-finite loss


def test_nan_loss_stops_naming_the_iteration_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_at": 3},
                    "train_cfg": {"max_iters": 4}, "default_hooks": {"checkpoint": {"interval": 1}}})
    runner = make_runner(cfg, tmp_path)
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert "non-finite loss nan at iteration 3" in message
    assert str(runner.work_dir / "iter_2") in message
    assert runner.iter == 2
    last = latest_checkpoint(runner.work_dir)
    assert last == runner.work_dir / "iter_2"
    assert not (runner.work_dir / "iter_3").exists()
    # The bad step was not applied: the parameters are those of the last good checkpoint (the forward pass
    # itself did update BatchNorm's running statistics, which the checkpoint does not contain).
    weights, _, meta = load_checkpoint(last)
    assert meta["iter"] == 2
    params = dict(runner.model.named_parameters())
    assert_weights_close({k: v.detach() for k, v in params.items()}, {k: weights[k] for k in params}, atol=0.0)


def test_nan_loss_inside_an_accumulation_window(tmp_path: Path) -> None:
    # accumulative_counts 2: the 4th micro-batch is the second half of iteration 2.
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_at": 4},
                    "optim_wrapper": {"accumulative_counts": 2}, "default_hooks": {"checkpoint": {"interval": 1}}})
    runner = make_runner(cfg, tmp_path)
    with pytest.raises(NonFiniteLossError, match="at iteration 2;"):
        runner.train()
    assert latest_checkpoint(runner.work_dir) == runner.work_dir / "iter_1"


class _Snapshots(Hook):
    """Parameters and base lr after every iteration."""

    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.params: list[dict[str, torch.Tensor]] = []
        self.lrs: list[float] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.params.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})
        self.lrs.append(runner.optim_wrapper.get_lr()["lr"])


def test_nonfinite_skip_skips_the_step_and_the_schedule(tmp_path: Path) -> None:
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_calls": [2]},
                    "train_cfg": {"nonfinite": "skip"},
                    "param_scheduler": [{"type": "LinearLR", "start_factor": 0.5, "begin": 0, "end": 4}]})
    runner = make_runner(cfg, tmp_path)
    snaps = _Snapshots()
    runner.register_hook(snaps)
    runner.train()
    assert runner.iter == 4 and runner.train_loop.nonfinite_skips == 1
    assert_weights_close(snaps.params[1], snaps.params[0], atol=0.0)  # iteration 2 changed nothing
    assert not torch.equal(snaps.params[2]["encoders.0.0.weight"], snaps.params[1]["encoders.0.0.weight"])
    # lr after the skipped iteration did not advance: iterations 3 and 2 use the same value.
    assert snaps.lrs[1] == snaps.lrs[0] and snaps.lrs[2] > snaps.lrs[1]
    train = [r for r in runner.history if "train/lr" in r]
    assert [r.get("train/skipped_steps") for r in train] == [None, 1.0, 1.0, 1.0]
    assert ["train/loss" in r for r in train] == [True, False, True, True]  # no loss is logged for the skipped step
    assert runner.train_loop.state_dict()["nonfinite_skips"] == 1


def test_nonfinite_skip_gives_up_after_max_in_a_row(tmp_path: Path) -> None:
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_at": 2},
                    "train_cfg": {"nonfinite": "skip", "max_nonfinite_skips": 2, "max_iters": 6}})
    runner = make_runner(cfg, tmp_path)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss in 2 iterations in a row \(up to iteration 3;"):
        runner.train()


def test_nonfinite_policy_is_checked() -> None:
    from engine.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        make_cfg({"train_cfg": {"nonfinite": "ignore"}})
    assert any(p.startswith("train_cfg.nonfinite:") for p in info.value.problems)
    with pytest.raises(ConfigError) as info:
        make_cfg({"train_cfg": {"max_nonfinite_skips": 0}})
    assert any(p.startswith("train_cfg.max_nonfinite_skips: must be at least 1") for p in info.value.problems)
