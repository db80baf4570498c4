"""Delivers spooled tracking records to MLflow: from a background thread while training runs, or once by `trainline
sync` afterwards. A store that is down, locked, read-only or out of space costs the training thread nothing: the
records wait in the spool, one warning is given per kind of failure, and delivery resumes when the store answers."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.tracking_spool import Spool

logger = logging.getLogger("trainline")

# Errors MLflow gives for a record it will never accept, however often it is sent (a param logged with another
# value, a run that was deleted): such a record is reported and passed over so it does not hold back the rest.
_PERMANENT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "INVALID_STATE",
                              "RESOURCE_ALREADY_EXISTS"})


def _permanent(exc: Exception) -> bool:
    code = getattr(exc, "error_code", None)
    message = str(exc)
    transient = ("database is locked", "readonly", "read-only", "disk", "space", "Connection", "timed out",
                 "Max retries")
    return code in _PERMANENT_CODES and not any(word in message for word in transient)


def failure_kind(exc: BaseException) -> str:
    """A short, stable name for a failure ("database is locked", "store unreachable"), for warning once per kind."""
    message = str(exc)
    lowered = message.lower()
    if any(word in lowered for word in ("max retries exceeded", "connection refused", "connection reset",
                                        "remotedisconnected", "timed out", "newconnectionerror",
                                        "name or service not known", "connection aborted")):
        return "store unreachable"
    for known in ("database is locked", "readonly database", "no space left"):
        if known in lowered:
            return known
    first = message.splitlines()[0] if message else ""
    return f"{type(exc).__name__}: {re.sub(r'[0-9]+', 'N', first)[:80]}"


def deliver(client: Any, record: dict[str, Any]) -> None:
    """Send one spooled record (see MLflowLoggerHook for what each kind holds)."""
    from mlflow.entities import Metric, Param, RunTag

    run_id, op = record["run"], record["op"]
    if op == "batch":
        client.log_batch(run_id, metrics=[Metric(k, v, ts, step) for k, v, ts, step in record.get("metrics", [])],
                         params=[Param(k, v) for k, v in record.get("params", [])],
                         tags=[RunTag(k, v) for k, v in record.get("tags", [])])
    elif op == "artifact":
        path = Path(record["path"])
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=record.get("artifact_path"))
        elif path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=record.get("artifact_path"))
        else:
            logger.warning("not uploading %s to MLflow run %s: it no longer exists", path, run_id)
    elif op == "status":
        if record["status"] == "RUNNING":
            client.update_run(run_id, status="RUNNING")
        else:
            client.set_terminated(run_id, status=record["status"], end_time=record.get("end_time"))
    elif op == "register":
        from engine.run_artifacts import register_model

        version = register_model(client, record["name"], run_id, record.get("artifact_path", "model"))
        logger.info("final weights of run %s registered in MLflow as %s version %s", run_id, record["name"], version)
    else:
        raise ValueError(f"unknown spool record {op!r}")


def deliver_pending(spool: Spool, client: Any, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Deliver every pending record in order, acknowledging each; returns how many were sent. A transient failure
    propagates (the record stays pending); a permanently refused record is reported and passed over. `should_stop`
    is asked between records: a stopped sender leaves the rest to `trainline sync` instead of racing it."""
    sent = 0
    for offset, record in spool.pending():
        if should_stop():
            break
        try:
            deliver(client, record)
        except Exception as exc:  # noqa: BLE001 - sorted into "retry later" and "never accepted" below
            if not _permanent(exc):
                raise
            logger.warning("MLflow refused a spooled %s record for run %s, passing over it: %s", record.get("op"),
                           record.get("run"), str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        spool.acknowledge(offset)
        sent += 1
    return sent


class Sender:
    """A daemon thread that delivers the spool whenever `wake` is called (and every `poll` seconds), backing off
    while the store fails. `drain` waits, bounded, for everything spooled so far to be delivered."""

    def __init__(self, spool: Spool, client: Any, describe: str, poll: float = 2.0, max_backoff: float = 5.0) -> None:
        self.spool = spool
        self.client = client
        self.describe = describe  # the store, for messages
        self.poll = poll
        self.max_backoff = max_backoff
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = False
        self._warned: set[str] = set()
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="trainline-mlflow-sender", daemon=True)

    def start(self) -> Sender:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _loop(self) -> None:
        backoff = 0.0
        while not self._stop:
            self._wake.wait(timeout=backoff or self.poll)
            self._wake.clear()
            try:
                deliver_pending(self.spool, self.client, lambda: self._stop)
            except Exception as exc:  # noqa: BLE001 - any store failure: keep the records, retry with back-off
                self._on_failure(exc)
                backoff = min(max(backoff * 2, 0.25), self.max_backoff)
                continue
            if self._failing:
                self._failing = False
                logger.warning("MLflow store %s answers again; the spooled records were delivered", self.describe)
            backoff = 0.0
            if self.spool.sent_offset() >= self.spool.size():
                self._idle.set()

    def _on_failure(self, exc: BaseException) -> None:
        self._failing = True
        kind = failure_kind(exc)
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("MLflow store %s failed (%s); training continues, and what it logs is kept in %s and sent "
                           "when the store answers (or later by `trainline sync`)", self.describe, kind,
                           self.spool.path)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every record spooled so far to be delivered; True if it was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.spool.sent_offset() >= self.spool.size():
                return True
            self.wake()
            self._idle.wait(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
        return self.spool.sent_offset() >= self.spool.size()

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
