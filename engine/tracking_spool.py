"""The on-disk spool of tracking records: append-only JSON lines, fsynced, plus the offset of what has been delivered.

Everything the MLflow hook sends goes through `<work_dir>/mlflow_spool.jsonl` first, so neither a tracking server
that is down nor a crash of the training process loses a point: the sender (or `trainline sync`) delivers the lines
past `mlflow_spool.sent` and moves that offset on after each one. Delivery is at least once; the records are built to
be idempotent (a metric point with its original timestamp, a param with its value, a tag, an artifact path, a final
status), so a line delivered twice after a crash leaves the store as if it had been delivered once.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.checkpoint import atomic_write_text

SPOOL_NAME = "mlflow_spool.jsonl"
_SENT_SUFFIX = ".sent"


class Spool:
    """One work dir's spool. Thread-safe: the training thread appends while the sender reads and acknowledges."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent_path = path.with_name(path.name + _SENT_SUFFIX)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # A delivered-offset file without its spool belongs to a spool that was removed: it means nothing now.
            self.sent_path.unlink(missing_ok=True)
        else:
            self._drop_partial_tail()

    def _drop_partial_tail(self) -> None:
        """A crash in the middle of an append leaves a line without its newline: cut it, so the next append does not
        glue a new record onto it (the record it was part of had not been acknowledged to anyone)."""
        with open(self.path, "rb+") as fh:
            data = fh.read()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write `records` durably (one line each, then fsync); raises OSError when the disk refuses."""
        if not records:
            return
        data = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in records).encode()
        with self._lock:
            with open(self.path, "ab") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())

    def sent_offset(self) -> int:
        try:
            return int(self.sent_path.read_text(encoding="utf-8").strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def pending(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(offset after the record, record) for each complete line not yet acknowledged, oldest first."""
        offset = self.sent_offset()
        with self._lock:
            if not self.path.exists():
                return
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # an append in progress: the rest comes next round
            offset += len(line)
            yield offset, json.loads(line)

    def acknowledge(self, offset: int) -> None:
        """Everything before `offset` has been delivered."""
        atomic_write_text(self.sent_path, str(offset))

    def pending_count(self) -> int:
        return sum(1 for _ in self.pending())

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record ever spooled here, delivered or not."""
        with self._lock:
            if not self.path.exists():
                return
            data = self.path.read_bytes()
        for line in data.splitlines(keepends=True):
            if line.endswith(b"\n"):
                yield json.loads(line)

    def remove_if_delivered(self) -> bool:
        """Delete the spool once every record in it is delivered (the store then holds everything)."""
        with self._lock:
            if self.size() and self.sent_offset() < self.size():
                return False
            self.path.unlink(missing_ok=True)
            self.sent_path.unlink(missing_ok=True)
            return True


def find_spools(root: Path) -> list[Path]:
    """Spool files under `root` (a project's work_dirs), oldest first."""
    if not root.is_dir():
        return []
    return sorted(root.rglob(SPOOL_NAME), key=lambda p: p.stat().st_mtime)
