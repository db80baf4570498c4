"""The same params on two CPU processes (torchrun, gloo): one MLflow run, outputs written once, losses averaged."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import BIN, make_project

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]


def test_two_process_training_with_accumulation(tmp_path):
    project = make_project(tmp_path, {"optim_wrapper": {"accumulative_counts": 2}})
    project.run(str(BIN / "python"), "-m", "stages.prepare")
    result = project.run(str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "stages.train",
                         check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((project.path / "models/train_run.json").read_text())
    assert info["iterations"] == 6 and (project.path / "models/model.safetensors").is_file()
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == info["mlflow_run_id"]
    assert run.data.tags["world_size"] == "2"
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == [1, 2, 3, 4, 5, 6]
    assert "val/mIoU" in run.data.metrics
