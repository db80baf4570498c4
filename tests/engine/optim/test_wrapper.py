"""OptimWrapper / AmpOptimWrapper in training: accumulation, clipping, grad_norm, mixed precision, skipped steps."""

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.errors import UserError
from engine.hooks.hook import Hook, Priority
from engine.optim.wrapper import AmpOptimWrapper, OptimWrapper
from tests.engine.fixtures import (
    WindowRecorder,
    assert_weights_close,
    count_optimizer_steps,
    make_cfg,
    make_runner,
    replay_sgd,
    reset_accelerate,
    weights_of,
)


def _train_values(runner: Any, key: str) -> list[float]:
    """`train/<key>` per logged step (the logger logs every iteration in these tests)."""
    return [r[f"train/{key}"] for r in runner.history if f"train/{key}" in r]


def _total_norm(params: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


def _grads_at_step(runner: Any) -> list[list[torch.Tensor]]:
    """The gradients the optimizer sees at each step (after any clipping)."""
    seen: list[list[torch.Tensor]] = []

    def pre_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        seen.append([p.grad.clone() for g in optimizer.param_groups for p in g["params"] if p.grad is not None])

    runner.optim_wrapper.optimizer.optimizer.register_step_pre_hook(pre_hook)
    return seen


def _norms_before_clipping(runner: Any, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The total gradient norm right before the wrapper clips or measures (independent of what it returns)."""
    norms: list[float] = []
    original = runner.accelerator.clip_grad_norm_

    def measuring(params: Any, *args: Any, **kwargs: Any) -> Any:
        params = list(params)
        norms.append(_total_norm(params))
        return original(params, *args, **kwargs)

    monkeypatch.setattr(runner.accelerator, "clip_grad_norm_", measuring)
    return norms


# ---------------------------------------------------------------------------------------------------------------
# gradient accumulation: one iteration = one optimizer step over accumulative_counts micro-batches


def test_accumulation_steps_once_on_the_mean_loss_and_schedulers_step_per_iteration(tmp_path: Path) -> None:
    cfg = make_cfg({"optim_wrapper": {"accumulative_counts": 2},
                    "param_scheduler": [{"type": "LinearLR", "start_factor": 0.5, "begin": 0, "end": 3}],
                    "train_cfg": {"max_iters": 3, "val_interval": 3}})
    runner = make_runner(cfg, tmp_path)
    initial = weights_of(runner)
    windows = WindowRecorder()
    runner.register_hook(windows)
    steps = count_optimizer_steps(runner)
    runner.train()
    assert runner.iter == 3 and steps[0] == 3
    assert [len(w) for w in windows.windows] == [2, 2, 2]
    # 16 images / batch 4 = 4 batches per data epoch: the iteration loop's windows run across epoch boundaries,
    # so 6 distinct micro-batches were consumed (the first 4, then 2 of the next pass).
    assert runner.train_loop.stream.epoch == 1 and runner.train_loop.stream.position == 2
    # The scheduler stepped once per iteration, not per micro-batch (which would give 0.05, 0.1, 0.1).
    lrs = _train_values(runner, "lr")
    assert lrs == pytest.approx([0.05, 0.075, 0.1], rel=1e-12)
    assert runner.schedulers[0].last_step == 2
    assert_weights_close(weights_of(runner), replay_sgd(cfg, initial, windows.windows, lrs), atol=1e-6)


def test_without_accumulation_each_micro_batch_is_a_step(tmp_path: Path) -> None:
    cfg = make_cfg({"train_cfg": {"max_iters": 3, "val_interval": 3}})
    runner = make_runner(cfg, tmp_path)
    initial = weights_of(runner)
    windows = WindowRecorder()
    runner.register_hook(windows)
    runner.train()
    assert [len(w) for w in windows.windows] == [1, 1, 1]
    assert_weights_close(weights_of(runner), replay_sgd(cfg, initial, windows.windows), atol=1e-6)


def test_begin_window_rejects_sizes_outside_the_count(tmp_path: Path) -> None:
    runner = make_runner(make_cfg({"optim_wrapper": {"accumulative_counts": 2}}), tmp_path)
    for size in (0, 3):
        with pytest.raises(ValueError, match="a window holds 1 to 2 micro-batches"):
            runner.optim_wrapper.begin_window(size)


# ---------------------------------------------------------------------------------------------------------------
# clipping and grad_norm


def test_clip_by_norm_logs_the_pre_clip_norm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    max_norm = 0.01
    cfg = make_cfg({"optim_wrapper": {"clip_grad": {"max_norm": max_norm, "norm_type": 2}}})
    runner = make_runner(cfg, tmp_path)
    before = _norms_before_clipping(runner, monkeypatch)
    at_step = _grads_at_step(runner)
    runner.train()
    logged = _train_values(runner, "grad_norm")
    assert len(logged) == len(before) == len(at_step) == 4
    assert logged == pytest.approx(before, rel=1e-5)
    assert all(norm > 10 * max_norm for norm in logged)  # so every step was clipped
    for grads in at_step:
        after = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        assert after <= max_norm * (1 + 1e-5)
        assert after == pytest.approx(max_norm, rel=1e-4)


def test_clip_by_value_bounds_each_gradient_and_still_logs_grad_norm(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    clip_value = 1e-4
    cfg = make_cfg({"optim_wrapper": {"clip_grad": {"type": "value", "clip_value": clip_value}}})
    runner = make_runner(cfg, tmp_path)
    before = _norms_before_clipping(runner, monkeypatch)
    at_step = _grads_at_step(runner)
    runner.train()
    logged = _train_values(runner, "grad_norm")
    assert logged == pytest.approx(before, rel=1e-5) and len(logged) == 4
    for grads, pre_clip in zip(at_step, before, strict=True):
        assert max(float(g.abs().max()) for g in grads) <= clip_value
        assert any(float(g.abs().max()) == pytest.approx(clip_value) for g in grads)  # clipping did happen
        after = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        assert after < pre_clip


def test_grad_norm_is_logged_without_clipping(tmp_path: Path) -> None:
    runner = make_runner(make_cfg(), tmp_path)
    at_step = _grads_at_step(runner)
    runner.train()
    logged = _train_values(runner, "grad_norm")
    expected = [float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
                for grads in at_step]
    assert len(logged) == 4 and all(math.isfinite(v) and v > 0 for v in logged)
    assert logged == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# mixed precision


def test_amp_bfloat16_trains_on_cpu_under_autocast(tmp_path: Path) -> None:
    cfg = make_cfg({"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": "bfloat16"},
                    "train_cfg": {"max_iters": 2, "val_interval": 2}})
    try:
        runner = make_runner(cfg, tmp_path)
        assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
        assert runner.accelerator.mixed_precision == "bf16"
        assert getattr(runner.accelerator, "scaler", None) is None  # no loss scaling for bf16
        dtypes: list[torch.dtype] = []
        runner.model.head.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        initial = weights_of(runner)
        runner.train()
        assert dtypes and set(dtypes) == {torch.bfloat16}  # the forward ran under bf16 autocast
        assert all(math.isfinite(v) for v in _train_values(runner, "loss"))
        final = weights_of(runner)
        assert all(v.dtype == initial[k].dtype for k, v in final.items())  # master weights stay fp32
        assert not torch.equal(final["head.weight"], initial["head.weight"])
    finally:
        reset_accelerate()  # leave no bf16 Accelerator state behind for later tests


@pytest.mark.skipif(torch.cuda.is_available(), reason="float16 autocast is supported where CUDA is available")
def test_amp_float16_without_cuda_is_a_user_error(tmp_path: Path) -> None:
    cfg = make_cfg({"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": "float16"}})
    with pytest.raises(UserError, match=r"optim_wrapper\.dtype: float16 mixed precision needs a CUDA GPU"):
        make_runner(cfg, tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# a step the loss scaler skipped does not advance the schedules


class _SkipStep(Hook):
    """Marks the steps of the given iterations as skipped (as an fp16 overflow would), before the scheduler hook."""

    priority = Priority.ABOVE_NORMAL

    def __init__(self, iterations: set[int]) -> None:
        self.iterations = iterations

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if batch_idx in self.iterations:
            runner.optim_wrapper.step_was_skipped = True


def test_skipped_step_keeps_schedulers_still(tmp_path: Path) -> None:
    cfg = make_cfg({"param_scheduler": [{"type": "LinearLR", "start_factor": 0.25, "begin": 0, "end": 5}],
                    "train_cfg": {"max_iters": 5, "val_interval": 5}})
    runner = make_runner(cfg, tmp_path)
    runner.register_hook(_SkipStep({1}))
    runner.train()

    def lr(t: int) -> float:
        return 0.1 * (0.25 + 0.75 * t / 4)

    # Iteration 1's step was "skipped": iteration 2 runs at the same lr, and the schedule ends one step behind.
    assert _train_values(runner, "lr") == pytest.approx([lr(0), lr(1), lr(1), lr(2), lr(3)], rel=1e-12)
    assert runner.schedulers[0].last_step == 4
    assert runner.optim_wrapper.param_groups[0]["lr"] == pytest.approx(lr(4), rel=1e-12)


class HalfStepSGD(torch.optim.SGD):
    """A user optimizer living outside torch.optim, reached by dotted path."""


def test_optimizer_by_dotted_path_trains(tmp_path: Path) -> None:
    reset_accelerate()
    cfg = make_cfg({"optim": {"type": "tests.engine.optim.test_wrapper.HalfStepSGD", "lr": 0.01, "momentum": 0.9}})
    runner = make_runner(cfg, tmp_path)
    steps = count_optimizer_steps(runner)
    runner.train()
    inner = runner.optim_wrapper.optimizer.optimizer  # Accelerate wraps the optimizer it was given
    assert type(inner).__name__ == "HalfStepSGD"
    assert steps == [4]
    assert _train_values(runner, "momentum") == [0.9] * 4


# ---------------------------------------------------------------------------------------------------------------
# the base lr (MMEngine's base_param_settings): `lr` is optim.lr as scheduled, however the groups merged

BASE_LR, LR_MULT, START = 0.005, 0.1, 1e-6
WARMUP = [{"type": "LinearLR", "start_factor": START, "begin": 0, "end": 5}]


def _wrapper_and_schedulers(paramwise_cfg: dict[str, Any] | None) -> tuple[OptimWrapper, list[Any]]:
    """SGD over the tiny UNet's groups from `paramwise_cfg`, the wrapper around it, and a 5-iteration warm-up."""
    from engine import build
    from engine.optim.constructors import build_param_groups
    from engine.seg.models.unet import UNet

    model = UNet(num_classes=4, base_channels=4, num_stages=2)
    groups, _ = build_param_groups(model, {"lr": BASE_LR, "momentum": 0.9}, paramwise_cfg)
    wrapper = OptimWrapper(None, torch.optim.SGD(groups, lr=BASE_LR, momentum=0.9))
    cfg = {"param_scheduler": WARMUP, "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 10}}
    return wrapper, build.build_schedulers(cfg, wrapper, epoch_length=1)


def test_one_merged_group_under_a_multiplier_still_reports_the_base_lr() -> None:
    # Every UNet parameter name contains "e": all of them merge into one group at lr * 0.1.
    wrapper, schedulers = _wrapper_and_schedulers({"custom_keys": {"e": {"lr_mult": LR_MULT}}})
    assert len(wrapper.param_groups) == 1
    seen = []
    for _ in range(6):
        seen.append(wrapper.get_lr())
        for scheduler in schedulers:
            scheduler.step()
    # LinearLR's closed form, factor(t) = START + (1 - START) * t / 4 over its 4 steps, on both lrs.
    for t, row in enumerate(seen):
        factor = START + (1 - START) * min(t, 4) / 4
        assert set(row) == {"lr", "lr/0"}
        assert row["lr"] == pytest.approx(BASE_LR * factor, rel=1e-12), t
        assert row["lr/0"] == pytest.approx(BASE_LR * LR_MULT * factor, rel=1e-12), t
    assert seen[0]["lr"] == pytest.approx(5e-9, rel=1e-12)
    assert seen[-1] == {"lr": pytest.approx(BASE_LR), "lr/0": pytest.approx(BASE_LR * LR_MULT)}
    assert wrapper.get_momentum() == 0.9


def test_the_base_lr_survives_a_state_dict_round_trip_with_one_merged_group() -> None:
    wrapper, schedulers = _wrapper_and_schedulers({"custom_keys": {"e": {"lr_mult": LR_MULT}}})
    for _ in range(2):
        for scheduler in schedulers:
            scheduler.step()
    state = wrapper.state_dict()
    assert state["base_param_settings"]["lr"] == pytest.approx(BASE_LR * (START + (1 - START) * 2 / 4))
    fresh, _ = _wrapper_and_schedulers({"custom_keys": {"e": {"lr_mult": LR_MULT}}})
    fresh.load_state_dict(state)
    assert fresh.get_lr() == wrapper.get_lr()


@pytest.mark.parametrize("paramwise_cfg", [None, {}, {"custom_keys": {"zzz": {"lr_mult": 2}}}])
def test_groups_equal_to_the_defaults_have_no_base_pseudo_group(paramwise_cfg: dict[str, Any] | None) -> None:
    # No group carries a multiplier: `lr` is the one group's lr, and there are no lr/<group> columns.
    wrapper, _ = _wrapper_and_schedulers(paramwise_cfg)
    assert wrapper.view.base_group is None
    assert wrapper.get_lr() == {"lr": pytest.approx(BASE_LR * START)}
    assert "base_param_settings" not in wrapper.state_dict()
