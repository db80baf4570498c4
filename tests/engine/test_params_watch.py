"""params.yaml edited while a real `python -m stages.train` runs: the stage fails and writes no outputs."""

from __future__ import annotations

import pytest

from tests.engine.trainer_processes import prepared_project, start_train, wait_for

pytestmark = pytest.mark.slow


def test_params_edited_mid_run_fail_without_outputs(tmp_path):
    project = prepared_project(tmp_path)
    proc, log = start_train(project)
    wait_for(log, r"Iter\(train\) \[ *3/", proc)
    params = project.params()
    params["optim"]["lr"] = 0.5
    params["mlflow"]["run_name"] = "renamed"
    project.write_params(params)
    assert proc.wait(timeout=300) == 2, log.read_text()
    errors = [line for line in log.read_text().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "changed during the run (mlflow.run_name, optim.lr)" in errors[0], errors
    assert "nothing was recorded" in errors[0] and "Traceback" not in log.read_text()
    for out in ("models/model.safetensors", "models/train_run.json", "metrics/train.json", "plots/train.csv"):
        assert not (project.path / out).exists(), out


def test_unchanged_params_write_outputs(tmp_path):
    project = prepared_project(tmp_path, {})  # the tiny 6-iteration training
    proc, log = start_train(project)
    assert proc.wait(timeout=300) == 0, log.read_text()
    assert (project.path / "models/model.safetensors").is_file() and (project.path / "metrics/train.json").is_file()
