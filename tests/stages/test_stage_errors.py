"""Stages fail on user mistakes with one `error:` line naming the key or file, exit code 2, and write nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def run_stage(cwd: Path, stage: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def edit_params(path: Path, **sections) -> None:
    params = yaml.safe_load((path / "params.yaml").read_text())
    for key, value in sections.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    (path / "params.yaml").write_text(yaml.safe_dump(params))


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_train_without_prepared_data_names_the_file_and_the_fix(workdir):
    result = run_stage(workdir, "train")
    assert_one_line_error(result, "data.root:", "data/shapes", "dvc repro prepare")
    assert not (workdir / "models").exists() and not (workdir / "metrics").exists()


def test_bad_params_stop_every_stage_before_work(workdir):
    edit_params(workdir, optim={"lr": "fast"}, data={"batch_sise": 8})
    for stage in ("prepare", "train", "eval"):
        result = run_stage(workdir, stage)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "optim.lr: must be a number, got 'fast'" in result.stderr
        assert "data.batch_sise: unknown key (did you mean 'batch_size'?)" in result.stderr
    assert not (workdir / "data").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="float16 is valid where CUDA exists")
def test_float16_on_cpu_is_refused_not_silently_fp32(workdir):
    assert run_stage(workdir, "prepare").returncode == 0
    edit_params(workdir, optim_wrapper={"type": "AmpOptimWrapper", "dtype": "float16"})
    result = run_stage(workdir, "train")
    assert_one_line_error(result, "optim_wrapper.dtype: float16", "needs a CUDA GPU", "bfloat16")
    assert not (workdir / "models").exists()


def test_missing_params_file(tmp_path):
    assert_one_line_error(run_stage(tmp_path, "prepare", "--params", "nope.yaml"), "nope.yaml: file not found")


def test_eval_without_training(workdir):
    assert_one_line_error(run_stage(workdir, "eval"), "models/train_run.json: not found", "dvc repro train")
