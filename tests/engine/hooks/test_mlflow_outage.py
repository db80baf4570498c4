"""A tracking store that fails mid-run costs the training nothing: a real `mlflow server` killed and restarted, killed
for good (then `trainline sync`), and a locked sqlite store. Every point, param, tag and artifact reaches the run,
none twice, no iteration stalls, no checkpoint is delayed or lost."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from engine.hooks.hook import Hook, Priority
from engine.tracking_spool import SPOOL_NAME, Spool
from tests.engine.fixtures import make_cfg, make_runner
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow  # real MLflow servers and stores

MAX_ITERS = 12
STALL_LIMIT_S = 3.0  # longest a training iteration may take while the store is failing


def _cfg(uri: str, sync_timeout: float = 30.0) -> dict[str, Any]:
    return make_cfg({"mlflow": {"tracking_uri": uri, "experiment_name": "outage"},
                     "default_hooks": {"mlflow": {"type": "MLflowLoggerHook", "flush_every": 1,
                                                  "sync_timeout": sync_timeout},
                                       "checkpoint": {"interval": 4}},
                     "train_cfg": {"max_iters": MAX_ITERS, "val_interval": 4}}, max_iters=MAX_ITERS)


def _run_contents(client: MlflowClient, run_id: str) -> dict[str, Any]:
    run = client.get_run(run_id)
    series = {k: [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)]
              for k in sorted(run.data.metrics) if not k.endswith(("time", "throughput"))}
    tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.") and k != "git.dirty"}
    artifacts = sorted(a.path for a in client.list_artifacts(run_id, "config"))
    params = {k: v for k, v in run.data.params.items() if k != "mlflow.tracking_uri"}  # the store differs
    return {"series": series, "params": params, "tags": tags, "artifacts": artifacts,
            "status": run.info.status}


class Outage(Hook):
    """Before iteration `down_at` (1-based) calls `down`, before `up_at` calls `up` (the test's own actions: not
    timed as training)."""

    priority = Priority.HIGHEST

    def __init__(self, down_at: int, down: Any, up_at: int | None = None, up: Any = None) -> None:
        self.down_at, self.down, self.up_at, self.up = down_at, down, up_at, up

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if runner.iter + 1 == self.down_at:
            self.down()
        if self.up_at is not None and runner.iter + 1 == self.up_at:
            self.up()


class IterationTimer(Hook):
    """Wall time of each iteration from just after the outage hook to after the checkpoint hook (LOWEST)."""

    priority = Priority.HIGHEST

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._start = 0.0

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self._start = time.perf_counter()

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.durations.append(time.perf_counter() - self._start)


def _timer() -> IterationTimer:
    timer = IterationTimer()
    timer.priority = Priority.HIGHEST
    return timer


def _reference(tmp_path: Path, sync_timeout: float = 30.0) -> dict[str, Any]:
    store = f"sqlite:///{tmp_path / 'reference.db'}"
    runner = make_runner(_cfg(store, sync_timeout), tmp_path / "reference")
    runner.train()
    return _run_contents(MlflowClient(store), runner.mlflow_run_id)


def _train_with_outage(cfg: dict[str, Any], work_root: Path, outage: Outage) -> tuple[Any, IterationTimer]:
    runner = make_runner(cfg, work_root)
    runner.register_hook(outage)
    timer = IterationTimer()
    runner.register_hook(timer, Priority.HIGHEST)  # after the outage hook: its actions are not timed
    end = _EndTimer(timer)
    runner.register_hook(end, Priority.LOWEST)
    runner.train()
    return runner, timer


class _EndTimer(Hook):
    def __init__(self, timer: IterationTimer) -> None:
        self.timer = timer

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.timer.after_train_iter(runner, batch_idx, data_batch, outputs)


def _checkpoints(runner: Any) -> list[str]:
    return sorted(p.name for p in runner.work_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_server_killed_and_restarted_mid_run_loses_nothing(tmp_path: Path) -> None:
    expected = _reference(tmp_path)
    server = MlflowServer(tmp_path)
    server.start()
    try:
        runner, timer = _train_with_outage(_cfg(server.uri), tmp_path / "run",
                                           Outage(3, server.kill, 9, server.start))
        assert max(timer.durations) < STALL_LIMIT_S, timer.durations
        assert _checkpoints(runner) == ["iter_12", "iter_4", "iter_8"]  # none skipped, none late
        got = _run_contents(MlflowClient(server.uri), runner.mlflow_run_id)
        assert got == expected  # every point once, params, tags, config artifacts, FINISHED
        assert not (runner.work_dir / SPOOL_NAME).exists()  # everything delivered: the spool is gone
    finally:
        server.kill()


def test_server_gone_for_good_then_trainline_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    expected = _reference(tmp_path, sync_timeout=1.0)
    server = MlflowServer(tmp_path)
    server.start()
    try:
        cfg = _cfg(server.uri, sync_timeout=1.0)
        runner, timer = _train_with_outage(cfg, tmp_path / "run", Outage(3, server.kill))
        assert max(timer.durations) < STALL_LIMIT_S, timer.durations
        assert _checkpoints(runner) == ["iter_12", "iter_4", "iter_8"]
        assert (runner.work_dir / SPOOL_NAME).is_file()
        failures = [r for r in caplog.records if "failed (" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in failures]  # one warning per failure kind, not per step
        assert any("trainline sync" in r.getMessage() for r in caplog.records)

        server.start()
        from engine.cli import main

        monkeypatch.chdir(tmp_path)
        (tmp_path / "params.yaml").write_text(f"mlflow:\n  tracking_uri: {server.uri}\n", encoding="utf-8")
        result = CliRunner().invoke(main, ["sync", "--work-dir", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        assert "sent" in result.output
        got = _run_contents(MlflowClient(server.uri), runner.mlflow_run_id)
        assert got == expected
        assert not (runner.work_dir / SPOOL_NAME).exists()
        again = CliRunner().invoke(main, ["sync", "--work-dir", str(tmp_path / "run")])
        assert again.exit_code == 0 and "nothing to send" in again.output
    finally:
        server.kill()


def test_locked_sqlite_store_delays_delivery_not_training(tmp_path: Path) -> None:
    expected = _reference(tmp_path)
    db = tmp_path / "locked.db"
    holder: list[sqlite3.Connection] = []

    def lock() -> None:  # another writer holding a transaction, as a second process would
        conn = sqlite3.connect(db, timeout=1, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        holder.append(conn)

    pending_at_release: list[int] = []

    def release() -> None:
        (spool,) = (tmp_path / "run").glob(f"*/{SPOOL_NAME}")
        pending_at_release.append(Spool(spool).pending_count())
        holder.pop().execute("ROLLBACK")

    runner, timer = _train_with_outage(_cfg(f"sqlite:///{db}"), tmp_path / "run", Outage(3, lock, 10, release))
    assert max(timer.durations) < STALL_LIMIT_S, timer.durations
    assert _checkpoints(runner) == ["iter_12", "iter_4", "iter_8"]
    assert _run_contents(MlflowClient(f"sqlite:///{db}"), runner.mlflow_run_id) == expected
    assert pending_at_release[0] > 0  # training went on while the store was blocked; delivery caught up later


def test_disk_refusing_the_spool_keeps_records_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    import errno

    expected = _reference(tmp_path)
    real_append = Spool.append
    full = {"on": False}

    def append(self: Spool, records: list[dict[str, Any]]) -> None:
        if full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(self, records)

    monkeypatch.setattr(Spool, "append", append)

    def fill() -> None:
        full["on"] = True

    def free() -> None:
        full["on"] = False

    store = f"sqlite:///{tmp_path / 'store.db'}"
    runner, _ = _train_with_outage(_cfg(store), tmp_path / "run", Outage(3, fill, 10, free))
    assert _checkpoints(runner) == ["iter_12", "iter_4", "iter_8"]
    assert len([r for r in caplog.records if "cannot write the tracking spool" in r.getMessage()]) == 1
    assert _run_contents(MlflowClient(store), runner.mlflow_run_id) == expected
