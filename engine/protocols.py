"""The small interfaces the loops and hooks are typed against, so neither depends on the concrete Runner."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Evaluator(Protocol):
    """`evaluator:` in params.yaml: scores the val and test loops' predictions."""

    def reset(self) -> None: ...

    def process(self, batch: Any, outputs: Any) -> None:
        """Add one batch and the model's `predict` outputs (already gathered across processes)."""

    def compute(self) -> dict[str, float]: ...


class EvaluatorArtifacts(Protocol):
    """Optional, on top of `Evaluator`: files worth keeping with the scores (per-class tables, prediction images).

    After the eval stage's test epoch (after `compute()`), the main process calls `artifacts(out_dir)` with an empty
    directory; the evaluator writes what it wants there and returns the paths (files or directories) to log. The
    MLflow run holds them under `<eval.split>/`, keeping their layout below `out_dir`. What it needs from the
    predictions it keeps itself in `process` (e.g. the first few samples). An evaluator without the method logs
    no files."""

    def artifacts(self, out_dir: Path) -> list[Path]: ...


class TrainLoopLike(Protocol):
    """What hooks read of the train loop."""

    iter: int
    epoch: int
    max_iters: int
    max_epochs: int
    by_epoch: bool
    stop_training: bool
    iter_time: float
    data_time: float

    def eta_seconds(self) -> float: ...

    def settle(self) -> None: ...


class RunnerLike(Protocol):
    """What loops and hooks may use of the runner."""

    cfg: dict[str, Any]
    mode: str
    model: Any
    evaluator: Any
    accelerator: Any
    optim_wrapper: Any
    schedulers: list[Any]
    work_dir: Path
    logger: logging.Logger
    params_hash: str
    history: list[dict[str, Any]]
    last_checkpoint: Path | None
    mlflow_run_id: str | None
    trained_iters: int
    train_loop: Any
    val_loop: Any

    @property
    def iter(self) -> int: ...

    @property
    def epoch(self) -> int: ...

    @property
    def max_iters(self) -> int: ...

    @property
    def is_main_process(self) -> bool: ...

    def call_hook(self, event: str, **kwargs: Any) -> None: ...

    def log_scalars(self, scalars: dict[str, float], step: int) -> None: ...

    def add_scalar_sink(self, sink: Callable[[dict[str, float], int], None]) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str) -> None: ...

    def add_artifact_sink(self, sink: Callable[[Path, str], None]) -> None: ...

    def headline(self, metrics: dict[str, float]) -> dict[str, float]: ...

    def model_weights(self) -> dict[str, Any]: ...

    def save_checkpoint(self, name: str, *, save_optimizer: bool = True, save_param_scheduler: bool = True,
                        pointer: str = ...) -> Path: ...

    def hook_order(self) -> str: ...

    def run_tags(self) -> dict[str, str]: ...
