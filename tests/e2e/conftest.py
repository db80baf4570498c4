"""Fixtures for end-to-end tests: a throwaway git + DVC copy of the project with a tiny, fast params.yaml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# What a clone of the project contains that the pipeline needs (outputs and caches are left behind).
PROJECT_FILES = ("engine", "stages", "dvc.yaml", ".dvcignore", ".gitignore", ".dvc/config", ".dvc/.gitignore")

TINY = {
    "prepare": {"type": "SyntheticShapes", "image_size": 32, "num_train": 32, "num_val": 8, "num_test": 8},
    "data": {"batch_size": 8, "val_batch_size": 8},
    "model": {"type": "UNet", "base_channels": 4, "num_stages": 2},
    "optim": {"type": "AdamW", "lr": 0.003, "betas": [0.9, 0.999], "weight_decay": 0.01},
    "param_scheduler": [
        {"type": "LinearLR", "start_factor": 1.0e-6, "begin": 0, "end": 2},
        {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 2, "end": 6},
    ],
    "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 6, "val_interval": 3},
    "default_hooks": {"logger": {"type": "LoggerHook", "interval": 1},
                      "checkpoint": {"type": "CheckpointHook", "interval": 3, "max_keep_ckpts": 2}},
}


def _merge(base: dict, over: dict) -> dict:
    """Nested merge; a node with its own `type` replaces the base node (another class takes other arguments)."""
    out = dict(base)
    for key, value in over.items():
        mergeable = isinstance(value, dict) and isinstance(out.get(key), dict) and "type" not in value
        out[key] = _merge(out[key], value) if mergeable else value
    return out


class Project:
    """A temp copy of the project under git, with helpers to run commands in it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
                    "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONDONTWRITEBYTECODE": "1", "GIT_AUTHOR_NAME": "t",
                    "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}
        self.env.pop("MLFLOW_TRACKING_URI", None)
        self.env.pop("DVC_ROOT", None)

    def run(self, *args: str, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "dvc"), *args, check=check)

    def params(self) -> dict:
        return yaml.safe_load((self.path / "params.yaml").read_text())

    def write_params(self, params: dict) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-qm", message)

    @property
    def store(self) -> str:
        return f"sqlite:///{self.path / 'mlflow.db'}"


def make_project(tmp_path: Path, overrides: dict | None = None, tiny: bool = True) -> Project:
    path = tmp_path / "project"
    path.mkdir()
    for name in PROJECT_FILES:
        src, dst = ROOT / name, path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    project = Project(path)
    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    project.write_params(_merge(_merge(base, TINY) if tiny else base, overrides or {}))
    project.run("git", "init", "-q")
    project.commit("initial")
    return project


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str]:
    """One project with `dvc repro` done and committed, shared by a module's tests (each works on a copy)."""
    project = make_project(tmp_path_factory.mktemp("baseline"))
    output = project.dvc("repro").stdout
    project.commit("baseline results")
    return project, output


@pytest.fixture
def project(baseline: tuple[Project, str], tmp_path: Path) -> Project:
    """A private copy of the baseline (git history, DVC cache and MLflow store included)."""
    copy = tmp_path / "project"
    shutil.copytree(baseline[0].path, copy, symlinks=True)
    return Project(copy)
