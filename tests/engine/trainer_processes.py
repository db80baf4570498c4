"""Helpers for tests that run real `python -m stages.train` processes on a tiny prepared project."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.e2e.conftest import Project, make_project

LONG = {"train_cfg": {"max_iters": 150, "val_interval": 1000},
        "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "begin": 0, "end": 150}],
        "default_hooks": {"checkpoint": {"interval": 1000}}}


def prepared_project(tmp_path: Path, overrides: dict | None = None, name: str = "p") -> Project:
    """A tiny project (LONG: 150 iterations, no checkpoint before the end) with its data prepared."""
    root = tmp_path / name
    root.mkdir()
    project = make_project(root, overrides if overrides is not None else LONG)
    project.run(sys.executable, "-m", "stages.prepare")
    return project


def start_train(project: Project, log: str = "train.log") -> tuple[subprocess.Popen, Path]:
    path = project.path / log
    with open(path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=project.path, env=project.env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    return proc, path


def wait_for(path: Path, pattern: str, proc: subprocess.Popen | None = None, timeout: float = 240) -> re.Match:
    """Wait until the log at `path` matches `pattern` (fails if `proc` ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text() if path.exists() else "")
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {pattern!r}:\n{path.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {pattern!r}:\n{path.read_text() if path.exists() else ''}")


def work_dir(project: Project) -> Path:
    (path,) = [p for p in (project.path / "work_dirs").iterdir() if p.is_dir()]
    return path


def run_status(project: Project) -> str:
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    (run,) = client.search_runs([exp.experiment_id])
    return run.info.status
