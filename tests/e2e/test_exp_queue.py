"""Queued DVC experiments run by two workers at once, on a project with no MLflow store yet: every run lands in the
project's store, named and tagged after its DVC experiment, and the runs of one grid share a `trainline.sweep` tag."""

from __future__ import annotations

import re
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import Project, make_project

pytestmark = pytest.mark.slow


def run_queue(project: Project, expected: int, timeout: float = 900) -> None:
    """`dvc queue start -j 2`, then wait until `expected` experiments succeeded (their git refs exist: cheaper to
    poll than `dvc queue status` on two busy cores) or one failed (it is kept in DVC's failed stash)."""
    project.dvc("queue", "start", "-j", "2")
    deadline = time.monotonic() + timeout
    try:
        while True:
            time.sleep(2)
            refs = project.run("git", "for-each-ref", "--format=%(refname)", "refs/exps/").stdout.split()
            done = [r for r in refs if not r.startswith("refs/exps/celery/")]
            failed = "refs/exps/celery/failed" in refs
            if len(done) >= expected or failed or time.monotonic() > deadline:
                break
    finally:
        project.dvc("queue", "stop", check=False)
    status = project.dvc("queue", "status").stdout
    assert len(done) == expected and not failed, status + "\n".join(
        project.dvc("queue", "logs", name, check=False).stdout[-3000:]
        for name in re.findall(r"^\S+\s+(\S+)\s.*\bFailed\b", status, re.M))


def store_runs(project: Project) -> list:
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    return client.search_runs([exp.experiment_id]) if exp else []


def test_grid_queued_on_a_fresh_store_two_workers(tmp_path):
    """The issue's sweep, `dvc exp run --queue -S 'optim.lr=1e-3,3e-3' -S 'optim.weight_decay=0,1e-4'`, run by
    `dvc queue start -j 2` on a project without an mlflow.db: the two workers open the brand-new store together."""
    # A baseline holding none of the grid's values (a point repeating one is tagged by fewer keys; see README).
    project = make_project(tmp_path, {"optim": {"lr": 0.002, "weight_decay": 0.01}})
    project.dvc("repro", "prepare")  # the executors check the data out instead of generating it four times
    project.commit("prepared data")
    assert not (project.path / "mlflow.db").exists()
    baseline = project.run("git", "rev-parse", "HEAD").stdout.strip()
    project.dvc("exp", "run", "--queue", "-S", "optim.lr=1e-3,3e-3", "-S", "optim.weight_decay=0,1e-4")

    run_queue(project, expected=4)

    exp_names = project.dvc("exp", "list", "--name-only").stdout.split()
    runs = store_runs(project)
    assert sorted(r.info.run_name for r in runs) == sorted(exp_names) and len(runs) == 4
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc.exp_name"] == run.info.run_name
        assert run.data.tags["dvc.baseline_rev"] == baseline
        assert "test/mIoU" in run.data.metrics  # the eval stage, in the same executor, found the run
    assert sorted((r.data.params["optim.lr"], r.data.params["optim.weight_decay"]) for r in runs) == [
        ("0.001", "0"), ("0.001", "0.0001"), ("0.003", "0"), ("0.003", "0.0001")]

    sweep = f"{baseline[:7]}:optim.lr,optim.weight_decay"
    assert {r.data.tags.get("trainline.sweep") for r in runs} == {sweep}
    # What a user types into the MLflow UI's search box finds exactly this sweep.
    found = MlflowClient(project.store).search_runs([runs[0].info.experiment_id],
                                                     filter_string=f"tags.trainline.sweep = '{sweep}'")
    assert len(found) == 4
    assert not list((project.path / ".dvc" / "tmp").rglob("mlflow.db"))
    assert not (project.path / "mlflow.db.lock").exists()
