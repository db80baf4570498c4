"""What an MLflow run holds beyond scalars, prepared as local files for the spool: the LR schedule plot, the
evaluator's own tables and images, the final weights as an MLflow model; and MLflow's system-metrics sampler."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path
from typing import Any

from engine.protocols import RunnerLike

logger = logging.getLogger("trainline")

SCHEDULE_PLOT = "lr_schedule.png"
SCHEDULE_CSV = "lr_schedule.csv"


def write_schedule(runner: RunnerLike, out_dir: Path) -> list[Path]:
    """`lr_schedule.png` and `.csv` in `out_dir`: the same simulation and drawing as `trainline schedule --plot`
    (the simulation steps a trial optimizer over the model's parameters; the model itself is not touched)."""
    from engine.cli.schedule_output import plot_schedule, schedule_csv
    from engine.optim.simulate import simulate_schedule

    rows = simulate_schedule(runner.cfg, runner.accelerator.unwrap_model(runner.model))
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
