"""`trainline sync`: deliver what tracking outages left in the work dirs' spools to the MLflow store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.tracking_sender import deliver_pending, failure_kind
from engine.tracking_spool import Spool, find_spools


def sync_spools(work_root: Path, client: Any, uri: str) -> tuple[list[str], list[str]]:
    """(lines saying what was sent, lines saying what could not be); delivered spools are removed."""
    sent_lines: list[str] = []
    failed: list[str] = []
    for path in find_spools(work_root):
        spool = Spool(path)
        pending = spool.pending_count()
        if pending == 0:
            spool.remove_if_delivered()
            continue
        try:
            sent = deliver_pending(spool, client)
        except Exception as exc:  # noqa: BLE001 - reported per spool; the records stay for the next sync
            failed.append(f"{path}: {spool.pending_count()} records not sent, MLflow store {uri} failed "
                          f"({failure_kind(exc)})")
            continue
        spool.remove_if_delivered()
        sent_lines.append(f"{path}: sent {sent} records to {uri}")
    return sent_lines, failed
