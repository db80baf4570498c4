"""Opening the MLflow store from several processes at once: the sqlite store lock, retries on transient failures,
and the experiment looked up or created exactly once."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine import tracking

ROOT = Path(__file__).resolve().parents[2]


def test_sqlite_path_only_for_a_sqlite_file():
    assert tracking.sqlite_path("sqlite:////abs/mlflow.db") == Path("/abs/mlflow.db")
    assert tracking.sqlite_path("sqlite:////abs/mlflow.db?timeout=20") == Path("/abs/mlflow.db")
    assert tracking.sqlite_path("sqlite:///:memory:") is None
    assert tracking.sqlite_path("http://localhost:5000") is None


def _locked_elsewhere(lock: Path) -> bool:
    """Whether another process holds the lock on `lock` (a forked child tries it without blocking)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                code = 1
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] != 0


def test_store_lock_is_exclusive_and_leaves_no_file(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lock = tmp_path / "mlflow.db.lock"
    with tracking.store_lock(uri):
        assert lock.is_file() and _locked_elsewhere(lock)
    assert not lock.exists()  # nothing new in the user's `git status`
    with tracking.store_lock("http://localhost:5000"):  # other stores: nothing to lock
        pass


def test_a_waiter_locks_afresh_when_the_holder_removed_the_file(tmp_path):
    """The waiter gets the lock on the file the holder removed on release: it must lock the path's file instead."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    lock = tmp_path / "mlflow.db.lock"
    inside, release = threading.Event(), threading.Event()

    def waiter() -> None:
        with tracking.store_lock(uri):
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=waiter)
    with tracking.store_lock(uri):
        thread.start()
        assert not inside.wait(0.3)  # blocked while this one holds it
    assert inside.wait(10)
    try:
        assert lock.is_file() and _locked_elsewhere(lock)
    finally:
        release.set()
        thread.join(10)
    assert not lock.exists()


def test_store_lock_without_a_writable_directory_does_not_block_reading(tmp_path):
    with tracking.store_lock(f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}"):
        pass


class Flaky:
    """Fails with `errors` in turn, then returns 'done'."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_retries_transient_failures_with_growing_waits():
    waits: list[float] = []
    action = Flaky(RuntimeError("(sqlite3.OperationalError) database is locked"),
                   RuntimeError("(sqlite3.IntegrityError) UNIQUE constraint failed: experiments.name"),
                   RuntimeError("database is locked"))
    assert tracking.with_retries(action, "test", sleep=waits.append) == "done"
    assert action.calls == 4
    assert len(waits) == 3 and waits[0] < waits[2]  # 0.2 s x [0.5, 1.5) then 0.8 s x [0.5, 1.5)


def test_other_failures_and_the_last_attempt_propagate():
    with pytest.raises(ValueError, match="bad"):
        tracking.with_retries(Flaky(ValueError("bad")), "test", sleep=lambda _: None)
    locked = [RuntimeError("database is locked")] * 3
    with pytest.raises(RuntimeError, match="locked"):
        tracking.with_retries(Flaky(*locked), "test", attempts=3, sleep=lambda _: None)


class RacingClient:
    """An experiment another process creates between this one's lookup and its create."""

    def __init__(self) -> None:
        self.created: dict[str, str] = {}
        self.lost_race = False

    def get_experiment_by_name(self, name: str) -> Any:
        if name in self.created:
            return type("Exp", (), {"experiment_id": self.created[name]})()
        return None

    def create_experiment(self, name: str, artifact_location: str | None = None) -> str:
        if not self.lost_race:
            self.lost_race = True
            self.created[name] = "7"
            error = RuntimeError(f"Experiment(name={name}) already exists. UNIQUE constraint failed")
            error.error_code = "RESOURCE_ALREADY_EXISTS"  # type: ignore[attr-defined]
            raise error
        raise AssertionError("created twice")


def test_experiment_lost_to_another_process_is_looked_up():
    assert tracking.experiment_id(RacingClient(), "exp", "http://localhost:5000") == "7"


RACER = """
import sys, time
from engine import tracking
uri, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
print(tracking.experiment_id(tracking.client(uri), "race", uri))
"""


@pytest.mark.slow
def test_processes_starting_together_on_a_fresh_store(tmp_path):
    """Without the lock, three processes on a fresh sqlite store fail in MLflow's schema migrations ("duplicate
    column name", "table _alembic_tmp_metrics already exists") and can leave it half-migrated."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    start = time.time() + 6  # every process has imported mlflow by then (2 slow cores)
    procs = [subprocess.Popen([sys.executable, "-c", RACER, uri, str(start)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    assert {out.strip() for out, _ in results} == {"1"}  # one experiment, the same id for all
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("SELECT name FROM experiments ORDER BY name")] == ["Default", "race"]
        assert not con.execute("SELECT name FROM sqlite_master WHERE name LIKE '_alembic_tmp%'").fetchall()
    assert not (tmp_path / "mlflow.db.lock").exists()
