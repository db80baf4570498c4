"""The train step's hot path: no host reads of device tensors between logged intervals, the device-side
non-finite guard, and weights bit-identical to a hand-written loop."""

from pathlib import Path
from typing import Any

import pytest
import torch

from engine.hooks.hook import Hook, Priority
from engine.loops import NonFiniteLossError
from tests.engine.fixtures import make_cfg, make_runner, weights_of

FUSED_SGD = {"_delete_": True, "type": "SGD", "lr": 0.1, "momentum": 0.9, "fused": True}
QUIET = {"mlflow": None, "checkpoint": None, "logger": {"type": "LoggerHook", "interval": 1000}}
# The ways Python code turns a tensor into a host value (each one waits for the device).
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


class _CountHostReads(Hook):
    """Counts host reads of tensors during iterations [start, stop) (0-based), from the first before_train_iter
    hook to the last after_train_iter hook: the iteration itself, not the data loader's host-side sampling and
    augmentation between iterations (CPU work on CPU tensors before the batch moves to the device)."""

    priority = Priority.HIGHEST

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.calls: list[str] = []
        self._saved: dict[str, Any] = {}

    def _patch(self) -> None:
        for name in HOST_READS:
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def counting(tensor: torch.Tensor, *args: Any, _name: str = name, _original: Any = original) -> Any:
                self.calls.append(_name)
                return _original(tensor, *args)

            setattr(torch.Tensor, name, counting)

    def _unpatch(self) -> None:
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
        self._saved = {}

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.start <= batch_idx < self.stop:
            self._patch()

    def register(self, runner: Any) -> None:
        runner.register_hook(self)
        runner.register_hook(_Unpatch(self))


class _Unpatch(Hook):
    priority = Priority.LOWEST

    def __init__(self, counter: _CountHostReads) -> None:
        self.counter = counter

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.counter._unpatch()


@pytest.mark.parametrize("accumulative_counts", [1, 2])
def test_no_host_reads_between_logged_intervals(tmp_path: Path, accumulative_counts: int) -> None:
    cfg = make_cfg({"optim": FUSED_SGD, "default_hooks": QUIET,
                    "optim_wrapper": {"accumulative_counts": accumulative_counts},
                    "train_cfg": {"max_iters": 12, "val_interval": 1000}}, max_iters=12)
    runner = make_runner(cfg, tmp_path)
    counter = _CountHostReads(2, 10)
    counter.register(runner)
    try:
        runner.train()
    finally:
        counter._unpatch()
    assert counter.calls == []
    assert runner.iter == 12
    assert isinstance(runner.optim_wrapper.grad_norm, torch.Tensor)  # measured, never read on the host


def test_the_count_sees_a_host_read(tmp_path: Path) -> None:
    # The same count with the host-side finite check (a non-fused optimizer): one read per iteration.
    cfg = make_cfg({"default_hooks": QUIET, "train_cfg": {"max_iters": 6, "val_interval": 1000}}, max_iters=6)
    runner = make_runner(cfg, tmp_path)
    counter = _CountHostReads(2, 5)
    counter.register(runner)
    try:
        runner.train()
    finally:
        counter._unpatch()
    assert counter.calls == ["__bool__"] * 3


class _Params(Hook):
    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.params: list[dict[str, torch.Tensor]] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.params.append({k: v.detach().clone() for k, v in runner.model.named_parameters()})


def test_device_guard_applies_nothing_from_the_bad_step_and_stops_at_the_next_settle(tmp_path: Path) -> None:
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_at": 3}, "optim": FUSED_SGD,
                    "default_hooks": {**QUIET, "logger": {"type": "LoggerHook", "interval": 5}},
                    "train_cfg": {"max_iters": 8, "val_interval": 1000}}, max_iters=8)
    runner = make_runner(cfg, tmp_path)
    snaps = _Params()
    runner.register_hook(snaps)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at iteration 3;"):
        runner.train()
    # Detected at the logged interval (iteration 5); iterations 3-5 changed nothing.
    assert len(snaps.params) == 4 and runner.iter == 4
    for later in snaps.params[2:]:
        assert all(torch.equal(later[k], snaps.params[1][k]) for k in later)
    assert not any(torch.equal(snaps.params[1][k], snaps.params[0][k]) for k in snaps.params[0])


def test_device_guard_settles_before_a_checkpoint(tmp_path: Path) -> None:
    cfg = make_cfg({"model": {"type": "tests.engine.fixtures.NaNUNet", "nan_at": 3}, "optim": FUSED_SGD,
                    "default_hooks": {**QUIET, "checkpoint": {"type": "CheckpointHook", "interval": 4}},
                    "train_cfg": {"max_iters": 8, "val_interval": 1000}}, max_iters=8)
    runner = make_runner(cfg, tmp_path)
    with pytest.raises(NonFiniteLossError, match="at iteration 3;"):
        runner.train()
    assert not (runner.work_dir / "iter_4").exists()


@pytest.mark.parametrize("fused", [True, False])
def test_weights_equal_a_plain_loop(tmp_path: Path, fused: bool) -> None:
    """The engine's step (device-guarded when fused) changes no bit of a good step: same weights as torch's own
    loop over the same batches."""
    cfg = make_cfg({"optim": {**FUSED_SGD, "fused": fused}, "default_hooks": QUIET,
                    "train_cfg": {"max_iters": 6, "val_interval": 1000}}, max_iters=6)
    runner = make_runner(cfg, tmp_path)
    model = runner.model
    initial, batches = _train_recording_batches(runner)
    trained = weights_of(runner)
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=fused)
    model.train()
    for batch in batches:
        losses = model(batch, mode="loss")
        sum(v for k, v in losses.items() if "loss" in k).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    replayed = weights_of(runner)
    assert all(torch.equal(trained[k], replayed[k]) for k in trained)


def test_600_steps_of_the_benchmark_mlp_equal_a_plain_loop(tmp_path: Path) -> None:
    """The instruction benchmark's workload (benchmarks/instructions.py): 600 engine steps, then torch's own loop
    over the same batches from the same initial weights, bit for bit."""
    from benchmarks.instructions import engine_cfg
    from engine.build import build_training

    runner = build_training(engine_cfg(600, tmp_path, mlflow=False), tmp_path)
    runner.val_loop = runner.train_loop.val_loop = None
    model = runner.model
    initial, batches = _train_recording_batches(runner)
    assert len(batches) == 600
    trained = weights_of(runner)
    model.load_state_dict(initial)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for batch in batches:
        model(batch, mode="loss")["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    replayed = weights_of(runner)
    assert all(torch.equal(trained[k], replayed[k]) for k in trained)


def _train_recording_batches(runner: Any) -> tuple[dict[str, torch.Tensor], list[Any]]:
    """Train `runner`; return its initial weights and every batch it trained on, for a plain loop to replay."""
    initial = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}
    batches: list[Any] = []

    class _Batches(Hook):
        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            batches.extend(data_batch)

    runner.register_hook(_Batches())
    runner.train()
    return initial, batches
