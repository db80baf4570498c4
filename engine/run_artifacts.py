"""What an MLflow run holds beyond scalars, prepared as local files for the spool: the LR schedule plot, the
evaluator's own tables and images, per-class tables and confusion-matrix plots (for any evaluator that reports
dotted `<metric>.<class>` keys or keeps a confusion matrix), the final weights as an MLflow model; and MLflow's
system-metrics sampler."""

from __future__ import annotations

import io
import json
import logging
import math
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.protocols import RunnerLike

logger = logging.getLogger("trainline")

SCHEDULE_PLOT = "lr_schedule.png"
SCHEDULE_CSV = "lr_schedule.csv"


def write_schedule(runner: RunnerLike, out_dir: Path) -> list[Path]:
    """`lr_schedule.png` and `.csv` in `out_dir`: the same simulation and drawing as `trainline schedule --plot`
    (the simulation steps a trial optimizer over the model's parameters; the model itself is not touched), with
    this training's own epoch length: no second build of the dataset, and per process as the schedulers use it."""
    from engine.build import loader_epoch_length
    from engine.cli.schedule_output import plot_schedule, schedule_csv
    from engine.optim.simulate import simulate_schedule

    epoch_length = loader_epoch_length(runner.train_loop.dataloader, runner.optim_wrapper.accumulative_counts)
    rows = simulate_schedule(runner.cfg, runner.accelerator.unwrap_model(runner.model), epoch_length)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_schedule(rows, out_dir / SCHEDULE_PLOT)
    (out_dir / SCHEDULE_CSV).write_text(schedule_csv(rows), encoding="utf-8")
    return [out_dir / SCHEDULE_PLOT, out_dir / SCHEDULE_CSV]


def evaluator_files(evaluator: Any, out_dir: Path) -> list[Path]:
    """What the evaluator's optional `artifacts(out_dir)` wrote (see `protocols.EvaluatorArtifacts`); [] when it
    has none. Each returned path must exist inside `out_dir`; others are named in a warning and left out."""
    make = getattr(evaluator, "artifacts", None)
    if not callable(make):
        return []
    if out_dir.exists():
        shutil.rmtree(out_dir)  # only this evaluation's files
    out_dir.mkdir(parents=True)
    paths = []
    for item in make(out_dir) or []:
        path = Path(item).resolve()
        if path.exists() and path.is_relative_to(out_dir.resolve()):
            paths.append(path)
        else:
            logger.warning("evaluator.artifacts() returned %s, which is not a file or directory under %s; not "
                           "logged", item, out_dir)
    return paths


def per_class_rows(metrics: dict[str, float]) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The dotted metrics (`IoU.circle`) as (metric names in first-seen order, {class: {metric: value}})."""
    names: dict[str, None] = {}
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if "." in key:
            metric, _, name = key.partition(".")
            names[metric] = None
            rows.setdefault(name, {})[metric] = value
    return list(names), rows


def write_per_class(metrics: dict[str, float], out_dir: Path, summary: Sequence[str]) -> list[Path]:
    """`per_class.md` (one row per class, a mean row where `m<metric>` is reported, then the `summary` metrics)
    and `per_class.json` (`summary` and `per_class`) in `out_dir`; NaN (a class with an empty denominator) is
    shown as NaN and written as null. Each file goes to a temporary name, then is renamed."""
    from engine.checkpoint import atomic_write_text

    columns, rows = per_class_rows(metrics)
    lines = [f"| class | {' | '.join(columns)} |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | {' | '.join(_cell(r.get(m)) for m in columns)} |" for name, r in rows.items()]
    if any(f"m{m}" in metrics for m in columns):
        lines.append(f"| **mean** | {' | '.join(_cell(metrics.get(f'm{m}')) for m in columns)} |")
    shown = [k for k in summary if k in metrics]
    lines += ["", ", ".join(f"{k}: {_cell(metrics[k])}" for k in shown), ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "per_class.md", "\n".join(lines))
    record = {"summary": {k: _none_if_nan(metrics[k]) for k in shown},
              "per_class": {n: {m: _none_if_nan(v) for m, v in r.items()} for n, r in rows.items()}}
    atomic_write_text(out_dir / "per_class.json", json.dumps(record, indent=2) + "\n")
    return [out_dir / "per_class.md", out_dir / "per_class.json"]


def _cell(value: float | None) -> str:
    return "" if value is None else "NaN" if math.isnan(value) else f"{value:.2f}"


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def write_confusion_matrix(path: Path, matrix: Any, class_names: Sequence[str]) -> Path:
    """The confusion matrix as a PNG: rows (ground truth) normalised to sum to 1, columns the prediction; each
    cell annotated in percent when there are few enough classes to read them; a class absent from the ground
    truth has an empty (grey) row. Written to a temporary name then renamed."""
    import matplotlib
    from matplotlib.figure import Figure  # drawn without pyplot: no GUI backend, no global figure state

    from engine.checkpoint import atomic_write_bytes

    counts = np.asarray(matrix, dtype=np.float64)
    n = counts.shape[0]
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rows = np.where(totals > 0, counts / totals, np.nan)
    side = min(max(4.0, 0.45 * n + 2.0), 40.0)
    fig = Figure(figsize=(side + 1.2, side), dpi=100)
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#d9d9d9")  # grey: no ground truth of that class
    shown = ax.imshow(np.ma.masked_invalid(rows), cmap=cmap, vmin=0.0, vmax=1.0)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="fraction of the ground-truth class")
    font = 9 if n <= 20 else 7 if n <= 40 else 4
    ax.set_xticks(range(n), labels=list(class_names), rotation=45 if n <= 40 else 90, ha="right", fontsize=font,
                  rotation_mode="anchor")
    ax.set_yticks(range(n), labels=list(class_names), fontsize=font)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix (rows normalised)")
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if not np.isnan(rows[i, j]):
                    ax.text(j, i, f"{rows[i, j] * 100:.1f}", ha="center", va="center", fontsize=font - 1,
                            color="white" if rows[i, j] > 0.6 else "black")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def save_model(runner: RunnerLike, out_dir: Path) -> Path:
    """The final weights as an MLflow PyTorch-flavour model directory (loads with `mlflow.pytorch.load_model` and
    as a pyfunc). A fresh model is built from `model:` and given the weights, so no training wrapper (DDP,
    autocast) is pickled; loading it needs the model's class importable, as `model.type` names it."""
    import mlflow
    import mlflow.pytorch
    import torch

    from engine.build import build_model

    model = build_model(runner.cfg)
    model.load_state_dict(runner.model_weights())
    model.eval()
    if out_dir.exists():
        shutil.rmtree(out_dir)  # save_model refuses an existing directory
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # "pickle", not the 3.x default "pt2" (that needs an input example to trace); requirements given, not inferred
    # (inference imports and times the model).
    quiet = logging.getLogger("mlflow.pytorch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its warning about pickled models, on every save
    try:
        mlflow.pytorch.save_model(model, str(out_dir), serialization_format="pickle",
                                  pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                    f"mlflow=={mlflow.__version__}"])
    finally:
        quiet.setLevel(level)
    return out_dir


def register_model(client: Any, name: str, run_id: str, artifact_path: str = "model") -> str:
    """Register `runs:/<run_id>/<artifact_path>` as a new version of `name` (created if missing); a run that
    already has a version of `name` is not registered twice. Returns the version."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.run_id == run_id:
            return str(version.version)
    return str(client.create_model_version(name, f"runs:/{run_id}/{artifact_path}", run_id=run_id).version)


class SystemMetrics:
    """MLflow's own sampler (`mlflow.system_metrics`: CPU, memory, disk, network, GPU via psutil/pynvml) attached to
    a run by id, on its own daemon thread. A store that is down ends the sampler (MLflow's behaviour), never the
    training; stopping waits at most `timeout` seconds."""

    def __init__(self, run_id: str, tracking_uri: str, *, resume: bool) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # resume: continue the step count of the samples a continued run already holds (asks the store once).
        self.monitor = SystemMetricsMonitor(run_id, tracking_uri=tracking_uri, resume_logging=resume)
        self.monitor.start()

    def stop(self, timeout: float) -> None:
        # finish() joins the sampler and flushes it, each a request to the store: bounded here.
        done = threading.Thread(target=self.monitor.finish, name="trainline-system-metrics-stop", daemon=True)
        done.start()
        done.join(timeout)
        if done.is_alive():
            logger.warning("MLflow system-metrics sampler did not stop within %.0f s; its last samples may be lost",
                           timeout)
