"""`trainline unlock`: drop the entries of DVC's `.dvc/tmp/rwlock` whose processes are gone, keeping live ones."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.errors import UserError

RWLOCK = Path(".dvc/tmp/rwlock")


def project_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding `.dvc` (where `dvc repro` keeps its locks)."""
    for path in (start, *start.parents):
        if (path / ".dvc").is_dir():
            return path
    raise UserError(f"{start}: not inside a DVC project (no .dvc directory here or above); run `trainline unlock` "
                    f"from the project")


def holder_gone(pid: int, written: float) -> bool:
    """True when no running process can be the lock's holder: the PID is free, a zombie (killed, never reaped: DVC
    counts it as alive and stays blocked), or a process that started after the lock file was last written (the PID
    was reused, or the file came from another machine)."""
    import psutil

    try:
        process = psutil.Process(pid)
        status, created = process.status(), process.create_time()
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # someone else's live process: never remove its lock
        return False
    # One second of slack: psutil's start time is reconstructed from clock ticks, and a holder always starts well
    # before it writes its entry (dvc's start-up alone takes longer).
    return status == psutil.STATUS_ZOMBIE or created > written + 1.0


def _prune(lock: dict[str, Any], written: float) -> tuple[dict[str, Any], list[str]]:
    """The lock without dead holders, and one line per removed entry. Format (dvc/rwlock.py): `write` maps a path
    to one `{pid, cmd}`, `read` maps a path to a list of them; empty maps are dropped as DVC itself does."""
    removed: list[str] = []
    kept: dict[str, Any] = {}
    writes = {}
    for path, info in lock.get("write", {}).items():
        if not holder_gone(int(info["pid"]), written):
            writes[path] = info
        else:
            removed.append(f"write lock on {path} held by PID {info['pid']} ({info['cmd']}), which is gone")
    reads = {}
    for path, infos in lock.get("read", {}).items():
        alive = [info for info in infos if not holder_gone(int(info["pid"]), written)]
        removed += [f"read lock on {path} held by PID {info['pid']} ({info['cmd']}), which is gone"
                    for info in infos if info not in alive]
        if alive:
            reads[path] = alive
    if writes:
        kept["write"] = writes
    if reads:
        kept["read"] = reads
    return kept, removed


def unlock(root: Path) -> list[str]:
    """Remove dead holders from `<root>/.dvc/tmp/rwlock`; returns what was removed (empty: nothing to unlock).

    The edit happens under DVC's own guard (`rwlock.lock`), so a `dvc` starting now cannot interleave with it, and
    the file is replaced atomically, so a crash here never leaves half a lock file."""
    from dvc.lock import LockError, make_lock

    path = root / RWLOCK
    if not path.is_file():
        return []
    try:
        guard = make_lock(str(path.with_name("rwlock.lock")), tmp_dir=str(path.parent))
        guard.lock()
    except LockError:
        raise UserError(f"{path}: another dvc process is editing it right now; try again in a moment") from None
    try:
        try:
            lock = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError:
            raise UserError(f"{path}: not valid JSON (DVC's lock file is corrupted); with no dvc running, delete "
                            f"it") from None
        if not isinstance(lock, dict):
            raise UserError(f"{path}: not DVC's lock format (a JSON object with read/write maps); with no dvc "
                            f"running, delete it")
        try:
            kept, removed = _prune(lock, path.stat().st_mtime)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UserError(f"{path}: not DVC's lock format (read/write maps of {{pid, cmd}} entries); with no dvc "
                            f"running, delete it") from None
        if removed:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(kept), encoding="utf-8")
            os.replace(tmp, path)
        return removed
    finally:
        guard.unlock()
