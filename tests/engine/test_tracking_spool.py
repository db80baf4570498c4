"""The tracking spool and its delivery: durable appends, a torn last line cut, acknowledgements, back-off on
transient failures, records MLflow will never take passed over, and a disk that refuses the spool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.tracking_sender import Sender, deliver_pending, failure_kind
from engine.tracking_spool import SPOOL_NAME, Spool, find_spools


class FakeClient:
    """Records what would reach MLflow; fails the first `fail` calls with `error`."""

    def __init__(self, fail: int = 0, error: Exception | None = None) -> None:
        self.fail, self.error = fail, error or ConnectionError("Connection refused")
        self.batches: list[dict[str, Any]] = []
        self.statuses: list[str] = []

    def log_batch(self, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise self.error
        self.batches.append({"metrics": [(m.key, m.value, m.step) for m in metrics],
                             "params": [(p.key, p.value) for p in params], "tags": [(t.key, t.value) for t in tags]})

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> None:
        self.statuses.append(status)

    def update_run(self, run_id: str, status: str) -> None:
        self.statuses.append(status)


def _batch(step: int) -> dict[str, Any]:
    return {"run": "r1", "op": "batch", "metrics": [["train/loss", 1.0 / step, 1000 + step, step]]}


def test_append_pending_acknowledge(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_NAME)
    spool.append([_batch(1), _batch(2)])
    pending = list(spool.pending())
    assert [r["metrics"][0][3] for _, r in pending] == [1, 2]
    spool.acknowledge(pending[0][0])
    assert [r["metrics"][0][3] for _, r in spool.pending()] == [2]
    assert Spool(spool.path).sent_offset() == pending[0][0]  # the offset is on disk, for the next process
    assert not spool.remove_if_delivered()
    spool.acknowledge(pending[1][0])
    assert spool.remove_if_delivered() and not spool.path.exists() and not spool.sent_path.exists()


def test_a_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_NAME)
    spool.append([_batch(1)])
    with open(spool.path, "ab") as fh:
        fh.write(b'{"run":"r1","op":"ba')  # a crash in the middle of an append
    reopened = Spool(spool.path)
    reopened.append([_batch(2)])
    assert [r["metrics"][0][3] for _, r in reopened.pending()] == [1, 2]


def test_stale_offset_without_spool_is_dropped(tmp_path: Path) -> None:
    (tmp_path / f"{SPOOL_NAME}.sent").write_text("999")
    spool = Spool(tmp_path / SPOOL_NAME)
    spool.append([_batch(1)])
    assert len(list(spool.pending())) == 1


def test_transient_failure_keeps_records_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_NAME)
    spool.append([_batch(1), _batch(2), {"run": "r1", "op": "status", "status": "FINISHED", "end_time": 5}])
    client = FakeClient(fail=1)
    with pytest.raises(ConnectionError):
        deliver_pending(spool, client)
    assert spool.pending_count() == 3 and client.batches == []
    assert deliver_pending(spool, client) == 3
    assert [b["metrics"][0][2] for b in client.batches] == [1, 2] and client.statuses == ["FINISHED"]
    assert deliver_pending(spool, client) == 0  # nothing twice


def test_a_record_mlflow_never_accepts_is_passed_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    spool = Spool(tmp_path / SPOOL_NAME)
    spool.append([{"run": "r1", "op": "batch", "params": [["optim.lr", "0.1"]]}, _batch(2)])
    refused = MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)
    client = FakeClient(fail=1, error=refused)
    assert deliver_pending(spool, client) == 2
    assert [b["metrics"][0][2] for b in client.batches] == [2]
    assert "refused" in caplog.text and "Changing param values" in caplog.text


def test_sender_backs_off_warns_once_and_drains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path / SPOOL_NAME)
    client = FakeClient(fail=4)
    sender = Sender(spool, client, "test-store", poll=0.05, max_backoff=0.1).start()
    try:
        spool.append([_batch(1)])
        sender.wake()
        assert sender.drain(timeout=10.0)
    finally:
        sender.stop()
    assert [b["metrics"][0][2] for b in client.batches] == [1]
    warnings = [r.getMessage() for r in caplog.records if "failed (" in r.getMessage()]
    assert len(warnings) == 1 and "store unreachable" in warnings[0]
    assert "answers again" in caplog.text


def test_drain_gives_up_after_its_timeout(tmp_path: Path) -> None:
    spool = Spool(tmp_path / SPOOL_NAME)
    sender = Sender(spool, FakeClient(fail=10**6), "down", poll=0.05, max_backoff=0.05).start()
    try:
        spool.append([_batch(1)])
        assert not sender.drain(timeout=0.5)
    finally:
        sender.stop()
    assert spool.pending_count() == 1


def test_failure_kinds_are_stable() -> None:
    assert failure_kind(ConnectionError("HTTPConnectionPool(port=5123): Max retries exceeded")) == "store unreachable"
    assert failure_kind(RuntimeError("(sqlite3.OperationalError) database is locked")) == "database is locked"
    assert failure_kind(OSError(28, "No space left on device")) == "no space left"
    assert failure_kind(ValueError("bad 12")) == failure_kind(ValueError("bad 34"))


def test_find_spools(tmp_path: Path) -> None:
    for name in ("a", "b"):
        Spool(tmp_path / name / SPOOL_NAME).append([_batch(1)])
    assert [p.parent.name for p in find_spools(tmp_path)] == ["a", "b"]
    assert find_spools(tmp_path / "missing") == []
