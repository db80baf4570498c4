"""`trainline compare` against a real MLflow sqlite store: differing params, metric deltas, formats, errors."""

from __future__ import annotations

import json
import os
import subprocess
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


def invoke(write_params: Callable[..., Path], uri: str, *args: str, command: str = "compare"):
    params = write_params({"mlflow": {"tracking_uri": uri, "experiment_name": "cmp"}})
    return CliRunner().invoke(main, [command, "--params", str(params), *args])


@pytest.fixture(autouse=True)
def outside_any_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a directory that is no git or DVC project unless a test makes it one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_table_shows_differing_params_and_deltas(write_params, store):
    result = invoke(write_params, store[0])
    assert result.exit_code == 0, result.output
    assert "note: no runs of this project or of the workspace's params yet: showing the newest 2" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["base", "lower-lr"]
    assert lines[1].split() == ["params.optim.lr", "0.005", "6e-05"]
    assert lines[2].split() == ["test/mIoU", "96.5", "31.25", "(-65.25)"]
    assert "seed" not in result.output  # equal params are left out


def test_named_runs_and_json(write_params, store):
    result = invoke(write_params, store[0], "lower-lr", store[1][0], "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows[0] == {"": "params.optim.lr", "lower-lr": "6e-05", "base": "0.005"}
    assert rows[1]["base"] == "96.5 (+65.25)"


def test_unknown_run_is_a_user_error(write_params, store):
    result = invoke(write_params, store[0], "nope")
    assert result.exit_code == 2
    assert "error: nope: no run with this id, name or params_hash in experiment 'cmp'" in result.output


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
    rows = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert rows == ["test/top1"]
    assert result.stdout.splitlines()[1].split() == ["test/top1", "80", "85.5", "(+5.5)"]


def _git(root: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@localhost", "PATH": os.environ["PATH"]}
    return subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True, check=True).stdout.strip()


def _params_hash(params: Path) -> str:
    from engine.config import load_params
    from engine.config.schema import training_hash
    from engine.config.validate import resolve

    return training_hash(resolve(load_params(params)))


@pytest.fixture
def project(tmp_path: Path, write_params) -> dict:
    """A git project: a run of an older commit, the baseline run of HEAD (named in the committed
    models/train_run.json) and two DVC experiments queued on HEAD."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = write_params({"mlflow": {"tracking_uri": uri, "experiment_name": "cmp"}})
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "commit", "-q", "--allow-empty", "-m", "old")
    old_commit = _git(tmp_path, "rev-parse", "HEAD")
    client = MlflowClient(uri)
    exp = client.create_experiment("cmp")

    def run(name: str, lr: str, curve: list[float], tags: dict[str, str]) -> str:
        made = client.create_run(exp, run_name=name, tags=tags)
        run_id = made.info.run_id
        client.log_param(run_id, "optim.lr", lr)
        for step, value in enumerate(curve, start=1):
            client.log_metric(run_id, "val/mIoU", value, step=step * 10)
            client.log_metric(run_id, "train/loss", 1.0 / step, step=step * 10)
        client.set_terminated(run_id)
        return run_id

    old = run("old-commit", "0.1", [10.0], {"git.commit": old_commit, "trainline.headline": "mIoU"})
    (tmp_path / "models").mkdir()
    base = run("base", "0.005", [50.0, 80.0, 70.0], {"trainline.headline": "mIoU"})
    (tmp_path / "models/train_run.json").write_text(json.dumps({"mlflow_run_id": base}))  # as git-tracked
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "baseline results")
    head = _git(tmp_path, "rev-parse", "HEAD")
    client.set_tag(base, "git.commit", old_commit)  # trained before the results were committed
    exp_tags = {"dvc.baseline_rev": head, "git.commit": head, "trainline.headline": "mIoU"}
    first = run("exp-a", "0.001", [40.0, 60.0], {**exp_tags, "dvc.exp_name": "exp-a"})
    second = run("exp-b", "0.003", [45.0, 90.0, 85.0], {**exp_tags, "dvc.exp_name": "exp-b"})
    return {"uri": uri, "params": params, "client": client, "exp": exp, "ids": [old, base, first, second],
            "head": head, "root": tmp_path}


def test_default_is_the_commits_experiment_set_with_final_and_best(project):
    result = CliRunner().invoke(main, ["compare", "--params", str(project["params"])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["base", "exp-a", "exp-b"]  # the older commit's run is not part of the set
    assert lines[1].split() == ["params.optim.lr", "0.005", "0.001", "0.003"]
    assert lines[2].split() == ["val/mIoU", "70", "60", "(-10)", "85", "(+15)"]
    assert lines[3].split() == ["val/mIoU", "(best)", "80", "60", "(-20)", "90", "(+10)"]
    # loss: smaller is better, so its best is the minimum
    assert lines[5].split() == ["train/loss", "(best)", "0.3333", "0.5", "(+0.1667)", "0.3333", "(+0)"]
    assert result.stderr == ""


def test_run_cache_restore_is_found_by_params_hash_and_said(project):
    """DVC restored the workspace's training from its run-cache: no new run, and compare names the earlier run."""
    client = project["client"]
    earlier = client.create_run(project["exp"], run_name="earlier",
                                tags={"params_hash": _params_hash(project["params"]), "git.commit": "0" * 40})
    client.log_metric(earlier.info.run_id, "val/mIoU", 77.0, step=10)
    client.set_terminated(earlier.info.run_id)
    result = CliRunner().invoke(main, ["compare", "--params", str(project["params"]), "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",base,exp-a,exp-b,earlier"
    assert "note: the workspace's params (params_hash " in result.stderr
    assert "were trained by the earlier run earlier (id " in result.stderr
    assert "found by its params_hash tag: DVC restored the train stage from its run-cache" in result.stderr

    report_dir = project["root"] / "metrics"
    report_dir.mkdir()
    (report_dir / "eval.json").write_text(json.dumps({"mIoU": 77.0, "split": "test"}))
    report = CliRunner().invoke(main, ["report", "--params", str(project["params"])])
    assert report.exit_code == 0, report.output
    assert "trained by MLflow run earlier (id " in report.stdout
    assert "DVC restored the train stage from its run-cache" in report.stdout


def test_a_params_hash_selects_its_run(project):
    params_hash = "abc123"
    project["client"].set_tag(project["ids"][2], "params_hash", params_hash)
    result = CliRunner().invoke(main, ["compare", "--params", str(project["params"]), "base", params_hash])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["base", "exp-a"]
    assert "note: abc123: the run with this params_hash is exp-a" in result.stderr


def test_plot_overlays_one_curve_per_run(project, tmp_path):
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(main, ["compare", "--params", str(project["params"]), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    assert f"wrote {out} (val/mIoU)" in result.stderr
    bad = CliRunner().invoke(main, ["compare", "--params", str(project["params"]), "--plot", str(out),
                                    "--metric", "val/nope"])
    assert bad.exit_code == 2
    assert "error: --metric: none of the compared runs logged 'val/nope'; logged: train/loss, val/mIoU" in bad.output


def test_no_store_yet_is_one_line_and_creates_none(write_params, tmp_path):
    """Reading commands do not create an empty store as a side effect."""
    db = tmp_path / "nothing" / "mlflow.db"
    db.parent.mkdir()
    result = invoke(write_params, f"sqlite:///{db}")
    assert result.exit_code == 2
    assert result.output == (f"error: no MLflow store at {db}: nothing has been tracked yet; run `dvc repro` first, "
                             f"or point MLFLOW_TRACKING_URI / params.yaml mlflow.tracking_uri at your store\n")
    assert not db.exists()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "eval.json").write_text(json.dumps({"mIoU": 50.0, "split": "test"}))
    report = invoke(write_params, f"sqlite:///{db}", command="report")
    assert report.exit_code == 0, report.output
    assert f"MLflow: no MLflow store at {db}" in report.stdout and not db.exists()
