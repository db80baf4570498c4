"""The team store (docs/tracking.md): `mlflow server` on PostgreSQL, artifacts served by the server. One project
points MLFLOW_TRACKING_URI at it; a `dvc repro` run, a queued experiment and a run whose server went down
mid-training (the rest delivered by `trainline sync` once it is back, then eval) all land there complete, each
point once."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from engine.tracking_spool import SPOOL_NAME, Spool
from tests.e2e.conftest import BIN, Project, make_project
from tests.engine.hooks.test_mlflow_outage import _run_contents
from tests.mlflow_server import MlflowServer
from tests.postgres_server import PostgresServer, bindir

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bindir() is None, reason="PostgreSQL is not installed (Debian: apt-get install "
                                                          "postgresql); .ci/run installs it")]

EXPERIMENT = "team"
# The outage: before this iteration (of 6; a checkpoint and a validation at 3) the trainer waits for the test, which
# kills the server once everything so far is delivered.
OUTAGE_AT = 4
GATE = '''"""Before iteration `at`: write the work dir to `<gate_dir>/reached`, wait for `<gate_dir>/go`."""
import time
from pathlib import Path

from engine.hooks.hook import Hook


class Gate(Hook):
    def __init__(self, at: int, gate_dir: str) -> None:
        self.at, self.dir = at, Path(gate_dir)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 != self.at:
            return
        (self.dir / "reached.tmp").write_text(str(runner.work_dir.resolve()))
        (self.dir / "reached.tmp").rename(self.dir / "reached")
        deadline = time.monotonic() + 120
        while not (self.dir / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the test never opened the gate")
            time.sleep(0.05)
'''


class Team:
    def __init__(self, postgres: PostgresServer, server: MlflowServer, project: Project, repro_output: str) -> None:
        self.postgres, self.server, self.project, self.repro_output = postgres, server, project, repro_output
        self.client = MlflowClient(server.uri)
        self.first_run_id = self.run_id()  # the `dvc repro` run

    def runs(self) -> list[Any]:
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        return self.client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []

    def run_id(self) -> str:
        """The run of the project's current training (what the train stage recorded for eval)."""
        return json.loads((self.project.path / "models/train_run.json").read_text())["mlflow_run_id"]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """PostgreSQL, an `mlflow server` on it, and a project pointed at the server with one `dvc repro` done."""
    root = tmp_path_factory.mktemp("team")
    with PostgresServer() as postgres:
        server = MlflowServer(root / "server", backend_store_uri=postgres.uri)
        server.root.mkdir()
        server.start(timeout=120)  # the first start creates MLflow's tables in PostgreSQL
        try:
            project = make_project(root, {"mlflow": {"experiment_name": EXPERIMENT}})
            project.env["MLFLOW_TRACKING_URI"] = server.uri
            output = project.dvc("repro").stdout
            project.commit("results of the first run")
            yield Team(postgres, server, project, output)
        finally:
            server.kill()


def test_repro_run_lands_in_postgres_with_served_artifacts(team: Team, tmp_path: Path) -> None:
    project, client = team.project, team.client
    assert re.findall(r"Running stage '(\w+)'", team.repro_output) == ["prepare", "train", "eval"]
    run = client.get_run(team.first_run_id)
    assert run.info.status == "FINISHED" and run.info.experiment_id == team.runs()[0].info.experiment_id
    assert run.data.params["optim.lr"] == "0.003" and run.data.params["train_cfg.max_iters"] == "6"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4, 5, 6]
    test_metrics = json.loads((project.path / "metrics/eval.json").read_text())
    assert run.data.metrics["test/mIoU"] == test_metrics["mIoU"]  # eval's metrics on the training's run
    assert run.data.tags["params_hash"] and run.data.tags["data_hash"]

    # The store is the PostgreSQL database, the artifacts are the server's: nothing was written into the project.
    import psycopg

    with psycopg.connect(team.postgres.uri) as conn:
        rows = conn.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,)).fetchall()
    assert rows == [("FINISHED",)]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert not (project.path / "mlflow.db").exists() and not (project.path / "mlartifacts").exists()
    assert {a.path for a in client.list_artifacts(run.info.run_id, "config")} >= {
        "config/params.yaml", "config/resolved_config.yaml", "config/hook_order.txt"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/iter_6"]
    got = Path(client.download_artifacts(run.info.run_id, "config/params.yaml", str(tmp_path)))
    assert yaml.safe_load(got.read_text()) == project.params()  # through the server, as another machine reads it
    assert list(team.server.artifacts.rglob(f"{run.info.run_id}/artifacts/config/params.yaml"))


def test_queued_experiment_lands_in_the_team_store(team: Team) -> None:
    project = team.project
    project.dvc("exp", "run", "--queue", "-S", "optim.lr=0.002", "-n", "team-queued")
    project.dvc("exp", "run", "--run-all")  # a queue worker, in a temporary copy of the project
    (run,) = [r for r in team.runs() if r.info.run_name == "team-queued"]
    assert run.info.status == "FINISHED" and run.data.params["optim.lr"] == "0.002"
    assert run.data.tags["dvc.exp_name"] == "team-queued"
    assert "test/mIoU" in run.data.metrics
    assert [m.step for m in team.client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert {a.path for a in team.client.list_artifacts(run.info.run_id, "config")} >= {"config/params.yaml"}
    assert not list((project.path / ".dvc").rglob("mlflow.db"))


def test_server_down_mid_training_then_trainline_sync(team: Team) -> None:
    project, server, client = team.project, team.server, team.client
    first = _run_contents(client, team.first_run_id)  # the same training without a gate: what the run must end as
    gate_dir = project.path / "gate"
    gate_dir.mkdir()
    (project.path / "team_gate.py").write_text(GATE)
    params = project.params()
    params["custom_hooks"] = [{"type": "team_gate.Gate", "at": OUTAGE_AT, "gate_dir": str(gate_dir)}]
    # at its end the training waits 1 s (not 30) for the gone server, then leaves the rest to `trainline sync`
    params["default_hooks"]["mlflow"] = {"type": "MLflowLoggerHook", "sync_timeout": 1.0}
    project.write_params(params)
    try:
        repro = subprocess.Popen([str(BIN / "dvc"), "repro"], cwd=project.path, env=project.env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_for(lambda: (gate_dir / "reached").is_file(), repro, "the gate")
            work_dir = Path((gate_dir / "reached").read_text())
            spool = Spool(work_dir / SPOOL_NAME)
            _wait_for(lambda: spool.pending_count() == 0, repro, "delivery of the first iterations")
            server.kill()
            (gate_dir / "go").touch()
            output, _ = repro.communicate(timeout=300)
        finally:
            if repro.poll() is None:
                repro.kill()
        # The outage cost the training nothing; the eval stage, which needs the server, refuses to start without it.
        assert re.findall(r"Running stage '(\w+)'", output) == ["train", "eval"], output
        assert "trainline sync" in output and repro.returncode != 0
        assert f"cannot reach the MLflow server at {server.uri}" in output
        assert Spool(work_dir / SPOOL_NAME).pending_count() > 0

        server.start(timeout=120)
        run_id = team.run_id()
        assert run_id != team.first_run_id
        assert client.get_run(run_id).info.status == "RUNNING"  # the server holds only what came before the outage
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == list(range(1, OUTAGE_AT))
        project.env["PYTHONPATH"] = str(project.path)  # the project's copy of the engine, as the stages use
        sync = project.run(str(BIN / "trainline"), "sync")
        del project.env["PYTHONPATH"]
        assert "sent" in sync.stdout, sync.stdout
        assert not (work_dir / SPOOL_NAME).exists()

        evaluated = project.dvc("repro").stdout
        assert re.findall(r"Running stage '(\w+)'", evaluated) == ["eval"]
        got = _run_contents(client, run_id)
        # Same seed and params as the first run (the gate only waits): every series equal, each point once.
        assert got["series"] == first["series"]
        assert got["status"] == "FINISHED" and got["artifacts"] == first["artifacts"]
        assert _without_gate(got["params"]) == _without_gate(first["params"])
        assert got["tags"].keys() == first["tags"].keys()
    finally:
        subprocess.run(["git", "checkout", "params.yaml"], cwd=project.path, check=True)


def _without_gate(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if not k.startswith(("custom_hooks", "default_hooks.mlflow."))}


def _wait_for(ready: Any, proc: subprocess.Popen[str], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before {what}:\n{proc.communicate()[0]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
