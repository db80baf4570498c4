"""Under DVC, stop training (as SIGTERM would) when the `dvc` process that started this stage dies."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import psutil


def dvc_ancestor() -> psutil.Process | None:
    """The nearest ancestor whose command line runs dvc (DVC starts stages through a shell, so it is often the
    grandparent), else the direct parent; None when there is no parent left to watch."""
    try:
        me = psutil.Process()
        parents = me.parents()
    except psutil.Error:
        return None
    for process in parents:
        try:
            if any(os.path.basename(part) in ("dvc", "dvc.exe") or part.endswith("/dvc/__main__.py")
                   or part == "dvc.cli" for part in process.cmdline()):
                return process
        except psutil.Error:
            continue
    return parents[0] if parents else None


def _gone(process: psutil.Process) -> bool:
    # is_running() also compares the start time, so a reused PID does not count as the same process; a killed
    # parent nobody reaped yet is a zombie and counts as gone.
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def watch_parent(on_death: Callable[[], None], interval: float = 1.0) -> threading.Thread | None:
    """When the stage runs under DVC (`DVC_ROOT` is set), call `on_death` once the dvc process is gone.

    A daemon thread polls instead of `prctl(PR_SET_PDEATHSIG)`: that fires on the death of the direct parent
    *thread*, which here is the shell between dvc and this process, and that shell outlives a killed dvc."""
    if not os.environ.get("DVC_ROOT"):
        return None
    parent = dvc_ancestor()
    if parent is None:
        return None

    def run() -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            if _gone(parent):
                logging.getLogger("trainline").warning("the dvc process (PID %d) that started this stage is gone: "
                                                       "stopping as if it had sent SIGTERM", parent.pid)
                on_death()
                return

    thread = threading.Thread(target=run, name="dvc-parent-watch", daemon=True)
    thread.start()
    return thread
