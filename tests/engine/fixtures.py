"""Shared helpers of the engine tests: a tiny dataset, tiny configs, recording hooks, runner construction.

Everything here is deliberately small (32x32 images, 16 training images, a 2-stage UNet with 4 base channels) so a
full training run takes well under a second on one CPU core.
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from engine.config import load_params, merge
from engine.config.validate import check_params
from engine.events import EVENT_NAMES
from engine.hooks.hook import Hook, Priority
from engine.seg.models.unet import UNet

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Intra-op threads only contend on a small shared machine; tiny convolutions are ~50x faster on one thread.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[2]
NUM_TRAIN, NUM_VAL, NUM_TEST = 16, 4, 4
IMAGE_SIZE = 32

_dataset_dir: Path | None = None


def dataset_root() -> Path:
    """The tiny synthetic dataset, generated once per test process (removed at exit)."""
    global _dataset_dir
    if _dataset_dir is None:
        from engine.seg.synthetic import generate_dataset

        base = Path(tempfile.mkdtemp(prefix="trainline-test-data-"))
        atexit.register(shutil.rmtree, base, True)
        generate_dataset(base / "shapes", seed=0, image_size=IMAGE_SIZE, num_train=NUM_TRAIN, num_val=NUM_VAL,
                         num_test=NUM_TEST)
        _dataset_dir = base / "shapes"
    return _dataset_dir


def tiny_overrides(max_iters: int = 4) -> dict[str, Any]:
    """Overrides of params.yaml that make training tiny: no MLflow, log every iteration, constant lr."""
    return {
        "seed": 0,
        "deterministic": True,
        "prepare": {"image_size": IMAGE_SIZE, "num_train": NUM_TRAIN, "num_val": NUM_VAL, "num_test": NUM_TEST},
        "data": {"root": str(dataset_root()), "batch_size": 4, "val_batch_size": 4, "num_workers": 0},
        "model": {"type": "UNet", "base_channels": 4, "num_stages": 2},
        "optim": {"_delete_": True, "type": "SGD", "lr": 0.1, "momentum": 0.9},
        "optim_wrapper": {"type": "OptimWrapper", "accumulative_counts": 1, "clip_grad": None},
        "param_scheduler": [],
        "train_cfg": {"_delete_": True, "type": "IterBasedTrainLoop", "max_iters": max_iters,
                      "val_interval": max_iters},
        "default_hooks": {"mlflow": None, "logger": {"type": "LoggerHook", "interval": 1},
                          "checkpoint": {"type": "CheckpointHook", "interval": max_iters, "max_keep_ckpts": -1}},
        "custom_hooks": [],
    }


def make_cfg(overrides: dict[str, Any] | None = None, *, max_iters: int = 4) -> dict[str, Any]:
    """A validated config: the project's params.yaml, the tiny overrides, then `overrides` (merged MMEngine-style)."""
    raw = merge(tiny_overrides(max_iters), load_params(REPO_ROOT / "params.yaml"))
    if overrides:
        raw = merge(copy.deepcopy(overrides), raw)
    cfg, _ = check_params(raw)
    return cfg


def reset_accelerate() -> None:
    """Forget Accelerate's process-wide singletons (precision, gradient-accumulation state, active dataloaders).

    Accelerate refuses a second Accelerator with another mixed precision in one process, and keeps the dataloaders
    of earlier runners in its gradient state; each test runner starts from a clean slate instead.
    """
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state()
    GradientState._reset_state()


def make_runner(cfg: dict[str, Any], work_root: Path) -> Any:
    """A training Runner for `cfg` (fresh Accelerate state) checkpointing under `work_root/<params hash>/`."""
    from engine.build import build_training

    reset_accelerate()
    return build_training(cfg, Path(work_root))


class StopTraining(Exception):
    """Raised by StopAt to simulate a run killed right after a checkpoint."""


class StopAt(Hook):
    """Runs last (LOWEST, after CheckpointHook) and raises StopTraining after iteration `iters` or epoch `epochs`
    (1-based counts), i.e. right after the checkpoint of that step was written."""

    priority = Priority.LOWEST

    def __init__(self, iters: int | None = None, epochs: int | None = None) -> None:
        self.iters = iters
        self.epochs = epochs

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.iters is not None and runner.iter + 1 == self.iters:
            raise StopTraining(f"stopped after iteration {self.iters}")

    def after_train_epoch(self, runner: Any) -> None:
        if self.epochs is not None and runner.epoch + 1 == self.epochs:
            raise StopTraining(f"stopped after epoch {self.epochs}")


class WindowRecorder(Hook):
    """Keeps a copy of every iteration's micro-batches (`data_batch`), to replay them in a plain torch loop."""

    priority = Priority.HIGHEST

    def __init__(self) -> None:
        self.windows: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        self.batch_idx: list[int] = []

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.windows.append([(images.clone(), masks.clone()) for images, masks in data_batch])
        self.batch_idx.append(batch_idx)


def count_optimizer_steps(runner: Any) -> list[int]:
    """A one-element list counting the underlying torch optimizer's steps (a step pre-hook)."""
    counter = [0]

    def pre_hook(optimizer: Any, args: Any, kwargs: Any) -> None:
        counter[0] += 1

    runner.optim_wrapper.optimizer.optimizer.register_step_pre_hook(pre_hook)
    return counter


def replay_sgd(cfg: dict[str, Any], initial: dict[str, torch.Tensor],
               windows: list[list[tuple[torch.Tensor, torch.Tensor]]],
               lrs: list[float] | None = None) -> dict[str, torch.Tensor]:
    """Plain torch: one SGD step per window on the mean loss of its micro-batches (at `lrs[i]` if given); returns
    the final weights."""
    from engine import build

    model = build.build_model(cfg)
    model.load_state_dict(initial)
    model.train()
    optim = cfg["optim"]
    optimizer = torch.optim.SGD(model.parameters(), lr=optim["lr"], momentum=optim.get("momentum", 0))
    for i, window in enumerate(windows):
        if lrs is not None:
            optimizer.param_groups[0]["lr"] = lrs[i]
        loss = sum(model((images, masks), mode="loss")["loss_ce"] for images, masks in window) / len(window)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_weights_close(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], atol: float) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        diff = float((actual[key].double() - expected[key].double()).abs().max()) if expected[key].numel() else 0.0
        assert diff <= atol, f"{key}: max abs difference {diff:g} > {atol:g}"


def assert_weights_equal(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert actual.keys() == expected.keys()
    unequal = [k for k in expected if not torch.equal(actual[k], expected[k])]
    assert not unequal, f"weights differ bitwise in {unequal}"


def weights_of(runner: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in runner.model_weights().items()}


def _summary(value: Any) -> Any:
    """A comparable, small description of an event argument."""
    if isinstance(value, (int, float, str)) or value is None:
        return value
    if isinstance(value, dict):
        return tuple(sorted(value))
    if isinstance(value, (list, tuple)):
        return len(value)
    return type(value).__name__


class RecordingHook(Hook):
    """Handles every event and records (event, batch_idx or None, runner.iter, runner.epoch)."""

    priority = Priority.NORMAL

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, int, int]] = []
        self.kwargs: list[tuple[str, dict[str, Any]]] = []

    def _record(self, event: str, runner: Any, kwargs: dict[str, Any]) -> None:
        self.calls.append((event, kwargs.get("batch_idx"), runner.iter, runner.epoch))
        self.kwargs.append((event, {k: _summary(v) for k, v in kwargs.items()}))

    @property
    def events(self) -> list[str]:
        return [c[0] for c in self.calls]


def _make_recorder(event: str) -> Any:
    def method(self: RecordingHook, runner: Any, **kwargs: Any) -> None:
        self._record(event, runner, kwargs)

    method.__name__ = event
    return method


for _event in EVENT_NAMES:
    setattr(RecordingHook, _event, _make_recorder(_event))


class OrderProbe(Hook):
    """Appends its label to a shared list at `before_train_iter` and `after_train_iter` (for ordering tests)."""

    def __init__(self, label: str, log: list[str], priority: int | str | None = None) -> None:
        self.label = label
        self.log = log
        if priority is not None:
            self.priority = priority

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.log.append(f"before:{self.label}")

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.log.append(f"after:{self.label}")


class PathHook(Hook):
    """Referenced by dotted path (`tests.engine.fixtures.PathHook`) from `custom_hooks`."""

    priority = Priority.LOW

    def __init__(self, tag: str = "default") -> None:
        self.tag = tag
        self.seen_iters: list[int] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.seen_iters.append(batch_idx)


class NaNUNet(UNet):
    """A UNet whose training loss turns NaN from its `nan_at`-th training forward on (1-based), or only at the
    forwards listed in `nan_calls`."""

    def __init__(self, num_classes: int, nan_at: int = 3, nan_calls: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(num_classes, **kwargs)
        self.nan_at = nan_at
        self.nan_calls = nan_calls
        self.loss_calls = 0

    def forward(self, batch: Any, mode: str = "predict") -> Any:
        out = super().forward(batch, mode)
        if mode != "loss":
            return out
        self.loss_calls += 1
        if (self.loss_calls in self.nan_calls) if self.nan_calls is not None else self.loss_calls >= self.nan_at:
            out = {k: v * float("nan") for k, v in out.items()}
        return out
