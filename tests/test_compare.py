"""`trainline compare` against a real MLflow sqlite store: differing params, metric deltas, formats, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from engine.cli import main


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, list[str]]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("cmp")
    ids = []
    for name, lr, miou in (("base", "0.005", 96.5), ("lower-lr", "6e-05", 31.25)):
        run = client.create_run(exp, run_name=name)
        client.log_param(run.info.run_id, "optim.lr", lr)
        client.log_param(run.info.run_id, "seed", "42")
        client.log_metric(run.info.run_id, "test/mIoU", miou, step=600)
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    return uri, ids


def invoke(write_params: Callable[..., Path], uri: str, *args: str):
    params = write_params({"mlflow": {"tracking_uri": uri, "experiment_name": "cmp"}})
    return CliRunner().invoke(main, ["compare", "--params", str(params), *args])


def test_table_shows_differing_params_and_deltas(write_params, store):
    result = invoke(write_params, store[0])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["base", "lower-lr"]
    assert lines[1].split() == ["params.optim.lr", "0.005", "6e-05"]
    assert lines[2].split() == ["test/mIoU", "96.5", "31.25", "(-65.25)"]
    assert "seed" not in result.output  # equal params are left out


def test_named_runs_and_json(write_params, store):
    result = invoke(write_params, store[0], "lower-lr", store[1][0], "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0] == {"": "params.optim.lr", "lower-lr": "6e-05", "base": "0.005"}
    assert rows[1]["base"] == "96.5 (+65.25)"


def test_unknown_run_is_a_user_error(write_params, store):
    result = invoke(write_params, store[0], "nope")
    assert result.exit_code == 2
    assert "error: nope: no run with this id or name in experiment 'cmp'" in result.output


def test_headline_metrics_come_from_the_run_tag(write_params, tmp_path):
    """A classifier's runs: its evaluator's headline (`top1`) is compared, not a fixed segmentation list."""
    uri = f"sqlite:///{tmp_path / 'cls.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("cmp")
    for name, top1 in (("a", 80.0), ("b", 85.5)):
        run = client.create_run(exp, run_name=name, tags={"trainline.headline": "top1"})
        client.log_metric(run.info.run_id, "test/top1", top1, step=10)
        client.log_metric(run.info.run_id, "test/loss_detail", 1.0, step=10)
        client.log_metric(run.info.run_id, "test/top1.cat", 1.0, step=10)
        client.set_terminated(run.info.run_id)
    result = invoke(write_params, uri)
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.output.splitlines()[1:]]
    assert rows == ["test/top1"]
    assert result.output.splitlines()[1].split() == ["test/top1", "80", "85.5", "(+5.5)"]
