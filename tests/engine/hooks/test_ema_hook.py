"""EMAHook: the update rule and its start, validation and export with the EMA weights, exact resume, bad arguments."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from engine.checkpoint import latest_checkpoint
from engine.errors import UserError
from engine.hooks import HOOKS
from engine.hooks.ema_hook import EMAHook
from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import StopAt, StopTraining, assert_weights_equal, make_cfg, make_runner, weights_of


class _Toy(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 1, dtype=torch.float64)
        self.bn = torch.nn.BatchNorm1d(1, dtype=torch.float64)


def _fake_runner(model: torch.nn.Module) -> Any:
    """The runner surface EMAHook reads, with the iteration counter under the test's control."""
    accelerator = SimpleNamespace(unwrap_model=lambda m: m)
    loop = SimpleNamespace(max_iters=100, max_epochs=1)
    return SimpleNamespace(model=model, accelerator=accelerator, mode="train", iter=0, epoch=0, train_loop=loop)


def _set_weights(model: _Toy, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        model.bn.running_mean.fill_(value)


def _drive(hook: EMAHook, values: list[float], model: _Toy | None = None) -> tuple[_Toy, Any]:
    """One 'optimizer step' per value: the source weights become the value, then after_train_iter runs."""
    model = model or _Toy()
    runner = _fake_runner(model)
    hook.before_run(runner)
    for i, value in enumerate(values):
        runner.iter = i
        _set_weights(model, value)
        hook.after_train_iter(runner, batch_idx=i)
    return model, runner


def closed_form(values: list[float], momentum: float, first: int) -> float:
    """EMA after the last value when updates start at index `first` (0-based): the first started update copies,
    then each one weighs the new value by `momentum`."""
    k = len(values) - 1
    total = (1 - momentum) ** (k - first) * values[first]
    for j in range(first + 1, k + 1):
        total += momentum * (1 - momentum) ** (k - j) * values[j]
    return total


def test_registered_by_short_name_with_mmengine_defaults() -> None:
    hook = HOOKS["EMAHook"]()
    assert isinstance(hook, EMAHook)
    assert (hook.ema_type, hook.momentum, hook.update_buffers, hook.begin_iter, hook.begin_epoch) == (
        "ExponentialMovingAverage", 0.0002, False, 0, 0)
    assert hook.priority == Priority.NORMAL


def test_update_is_exact_and_momentum_weighs_the_new_weights() -> None:
    hook = EMAHook(momentum=0.25)
    _drive(hook, [1.0, 2.0, 3.0])
    assert hook.ema is not None
    # copy 1, then 1 + 0.25 * (2 - 1) = 1.25, then 1.25 + 0.25 * (3 - 1.25) = 1.6875 (exact in binary)
    assert hook.ema["linear.weight"].tolist() == [[1.6875, 1.6875]]
    assert hook.ema["linear.bias"].tolist() == [1.6875]
    assert hook.steps == 3


@pytest.mark.parametrize(("begin", "first"), [(0, 0), (1, 0), (4, 3)])
def test_matches_the_closed_form_and_copies_before_begin_iter(begin: int, first: int) -> None:
    values = [0.3, -1.7, 2.2, 0.9, 5.1, -0.4, 1.3]
    hook = EMAHook(momentum=0.1, begin_iter=begin)
    _drive(hook, values)
    assert hook.ema is not None
    expected = closed_form(values, 0.1, first)
    for key in ("linear.weight", "linear.bias", "bn.weight", "bn.bias"):
        assert hook.ema[key].flatten().tolist() == pytest.approx([expected] * hook.ema[key].numel(), rel=1e-12)
    assert hook.steps == len(values) - first


def test_before_begin_the_ema_is_the_source() -> None:
    hook = EMAHook(momentum=0.5, begin_iter=10)
    _drive(hook, [1.0, 7.0, 3.0])
    assert hook.ema is not None and hook.ema["linear.bias"].tolist() == [3.0] and hook.steps == 0


def test_begin_epoch_counts_epochs_one_based() -> None:
    hook = EMAHook(momentum=0.5, begin_epoch=2)
    model = _Toy()
    runner = _fake_runner(model)
    runner.train_loop.max_epochs = 3
    hook.before_run(runner)
    for epoch, value in ((0, 4.0), (0, 8.0), (1, 2.0), (1, 6.0)):
        runner.epoch = epoch
        _set_weights(model, value)
        hook.after_train_iter(runner, batch_idx=0)
    # epoch 0 copies (4, 8); epoch 1 (the 2nd) starts: copy 2, then 2 + 0.5 * (6 - 2) = 4
    assert hook.ema is not None and hook.ema["linear.bias"].tolist() == [4.0]


def test_buffers_are_averaged_only_with_update_buffers() -> None:
    plain = EMAHook(momentum=0.5)
    _drive(plain, [2.0, 4.0])
    assert plain.ema is not None and set(plain.ema) == {"linear.weight", "linear.bias", "bn.weight", "bn.bias"}
    with_buffers = EMAHook(momentum=0.5, update_buffers=True)
    model, _ = _drive(with_buffers, [2.0, 4.0])
    assert with_buffers.ema is not None
    assert with_buffers.ema["bn.running_mean"].tolist() == [3.0]
    with torch.no_grad():
        model.bn.num_batches_tracked.fill_(7)
    with_buffers.after_train_iter(_fake_runner(model), batch_idx=2)
    assert with_buffers.ema["bn.num_batches_tracked"].item() == 7  # integers follow the source


def test_swap_puts_the_ema_in_and_back() -> None:
    hook = EMAHook(momentum=0.5)
    model, runner = _drive(hook, [2.0, 4.0])
    hook.before_val_epoch(runner)
    assert model.linear.bias.tolist() == [3.0]
    hook.after_val_epoch(runner, metrics={})
    assert model.linear.bias.tolist() == [4.0]
    hook.before_test_epoch(runner)
    assert model.linear.bias.tolist() == [3.0]
    hook.after_test_epoch(runner, metrics={})
    assert model.linear.bias.tolist() == [4.0]
    hook.after_train(runner)
    assert model.linear.bias.tolist() == [3.0]  # exported


def test_a_test_runner_tests_the_loaded_weights_unchanged() -> None:
    hook = EMAHook(momentum=0.5)
    model = _Toy()
    _set_weights(model, 5.0)
    runner = _fake_runner(model)
    runner.mode = "test"
    hook.before_run(runner)
    hook.before_test_epoch(runner)
    assert model.linear.bias.tolist() == [5.0] and hook.ema is None


def test_state_round_trips_into_a_fresh_hook() -> None:
    hook = EMAHook(momentum=0.25)
    _drive(hook, [1.0, 2.0])
    state = hook.state_dict()
    assert state["steps"] == 2 and state["ema"]["linear.bias"].tolist() == [1.25]
    fresh = EMAHook(momentum=0.25)
    fresh.load_state_dict(state)
    model = _Toy()
    runner = _fake_runner(model)
    fresh.before_run(runner)
    runner.iter = 2
    _set_weights(model, 3.0)
    fresh.after_train_iter(runner, batch_idx=2)
    assert fresh.ema is not None and fresh.ema["linear.bias"].tolist() == [1.25 + 0.25 * (3.0 - 1.25)]


def test_begin_after_the_end_is_refused_when_training_starts() -> None:
    hook = EMAHook(begin_iter=101)
    with pytest.raises(UserError, match="begin_iter 101 is after the last iteration"):
        hook.before_train(_fake_runner(_Toy()))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"momentum": 0}, "momentum must be a number strictly between 0 and 1"),
    ({"momentum": 1.0}, "momentum must be"),
    ({"momentum": True}, "momentum must be"),
    ({"begin_iter": -1}, "begin_iter must be a whole number >= 0, got -1"),
    ({"begin_epoch": 1.5}, "begin_epoch must be a whole number"),
    ({"begin_iter": 2, "begin_epoch": 1}, "set at most one"),
    ({"start_iters": 3, "begin_iter": 2}, "set only begin_iter"),
    ({"ema_type": "StochasticWeightAverage"}, "only 'ExponentialMovingAverage'"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EMAHook(**kwargs)


def test_start_iters_is_begin_iter() -> None:
    assert EMAHook(start_iters=7).begin_iter == 7


# ---------------------------------------------------------------------------------------------------------------
# in the runner


class _Probe(Hook):
    """Records the raw weights after each optimizer step (before EMAHook, at HIGH) and what validation sees."""

    priority = Priority.HIGH

    def __init__(self) -> None:
        self.raw: list[dict[str, torch.Tensor]] = []
        self.val_weights: list[dict[str, torch.Tensor]] = []
        self.after_val_weights: list[dict[str, torch.Tensor]] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.raw.append(weights_of(runner))

    def before_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if batch_idx == 0:
            self.val_weights.append(weights_of(runner))

    def after_val(self, runner: Any) -> None:
        self.after_val_weights.append(weights_of(runner))


EMA_CFG = {"custom_hooks": [{"type": "EMAHook", "momentum": 0.3}],
           "train_cfg": {"max_iters": 4, "val_interval": 2}, "default_hooks": {"checkpoint": {"interval": 2}}}


def _expected_ema(raw: list[dict[str, torch.Tensor]], params: set[str], upto: int, momentum: float = 0.3,
                  ) -> dict[str, torch.Tensor]:
    """What the EMA is after `upto` steps, by the same float32 ops (lerp_), starting with a copy."""
    ema = {k: raw[0][k].clone() for k in params}
    for step in raw[1:upto]:
        for k in params:
            ema[k].lerp_(step[k], momentum)
    return ema


def test_training_validates_and_exports_with_the_ema_weights(tmp_path: Path) -> None:
    runner = make_runner(make_cfg(EMA_CFG), tmp_path)
    probe = _Probe()
    runner.register_hook(probe)
    runner.train()
    params = {k for k, _ in runner.accelerator.unwrap_model(runner.model).named_parameters()}
    buffers = set(probe.raw[0]) - params
    assert params and buffers  # BatchNorm statistics are not averaged by default
    for val, upto in zip(probe.val_weights, (2, 4), strict=True):
        expected = _expected_ema(probe.raw, params, upto)
        assert_weights_equal({k: val[k] for k in params}, expected)
        assert not torch.equal(val[sorted(params)[0]], probe.raw[upto - 1][sorted(params)[0]])
        assert_weights_equal({k: val[k] for k in buffers}, {k: probe.raw[upto - 1][k] for k in buffers})
    # After validation training goes on with the raw weights.
    assert_weights_equal(probe.after_val_weights[0], probe.raw[1])
    # The exported weights are the EMA ones.
    final = weights_of(runner)
    assert_weights_equal({k: final[k] for k in params}, _expected_ema(probe.raw, params, 4))
    weights_path = tmp_path / "model.safetensors"
    runner.save_weights(weights_path)
    assert_weights_equal(load_file(str(weights_path)), final)
    # The checkpoint keeps the raw weights and the EMA, as tensors weights_only loading reads.
    ckpt = latest_checkpoint(runner.work_dir)
    assert ckpt is not None
    assert_weights_equal(load_file(str(ckpt / "model.safetensors")), probe.raw[3])
    state = torch.load(ckpt / "state.pt", weights_only=True)
    (ema_state,) = [v for k, v in state["hooks"].items() if k.endswith(":EMAHook")]
    assert ema_state["steps"] == 4
    assert_weights_equal(ema_state["ema"], _expected_ema(probe.raw, params, 4))


def test_resume_ends_bitwise_equal_to_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = make_cfg({**EMA_CFG, "train_cfg": {"max_iters": 5, "val_interval": 2}})
    uninterrupted = make_runner(cfg, tmp_path / "a")
    uninterrupted.train()
    expected = weights_of(uninterrupted)

    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(iters=3))  # the last checkpoint is iter_2
    with pytest.raises(StopTraining):
        first.train()
    resumed = make_runner(cfg, tmp_path / "b")
    resumed.train()
    assert resumed.iter == 5
    assert_weights_equal(weights_of(resumed), expected)
    # Validations after the checkpoint (the resumed process ran them) saw the same EMA weights.
    def later_vals(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in history if "val/mIoU" in r and r["step"] > 2]

    assert [r["step"] for r in later_vals(resumed.history)] == [4, 5]
    assert later_vals(resumed.history) == later_vals(uninterrupted.history)

    # A finished run resumed again trains no further and exports the same EMA weights.
    again = make_runner(cfg, tmp_path / "b")
    again.train()
    assert_weights_equal(weights_of(again), expected)
