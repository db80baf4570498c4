"""One trainer per work dir: an exclusive `flock` on `<work dir>/train.lock`, holding the owner's PID."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import UserError


def _rank() -> int:
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0)


def lock_path(work_dir: Path, rank: int = 0) -> Path:
    """Rank 0 holds `train.lock`; every other rank its own file, so two launches of the same params conflict on
    every rank and each rank exits before it joins a collective that would wait for the others forever."""
    return work_dir / ("train.lock" if rank == 0 else f"train.rank{rank}.lock")


@contextmanager
def hold_run_lock(work_dir: Path) -> Iterator[Path]:
    """Hold this params' work dir for the duration of the block, or raise UserError naming the holder's PID.

    Two trainers of the same params would write the same checkpoints, each resuming over the other's. `flock` is
    released by the kernel when the process dies however it dies, so a killed trainer never leaves a stale lock; the
    file itself stays (deleting it would let a third trainer lock a fresh inode while the second holds the old)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    path = lock_path(work_dir, _rank())
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise UserError(f"{work_dir}: another training with the same params is running (PID {holder}, lock "
                            f"{path.name}); wait for it to finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
