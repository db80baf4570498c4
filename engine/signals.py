"""Graceful stop on SIGTERM/SIGINT: the first signal sets a flag the train loop checks between iterations (checkpoint,
then stop); a second one exits at once."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

_requested: int | None = None  # the first signal received, until the loop acts on it


class TrainingInterrupted(BaseException):
    """Raised by the train loop after it saved a checkpoint for a stop request. A BaseException, like
    KeyboardInterrupt, so no `except Exception` on the way up swallows it; the Runner's `on_exception` still runs
    (the MLflow hook flushes and ends the run)."""

    def __init__(self, signum: int, iteration: int, checkpoint: Path) -> None:
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        super().__init__(f"interrupted at iteration {iteration}; checkpoint saved to {checkpoint}; resume with the "
                         f"same command")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for death by this signal: 143 (TERM), 130 (INT)


def _handle(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:
        # Second signal: the user does not want to wait for the checkpoint.
        os.write(2, f"second {signal.Signals(signum).name}: exiting now, without a checkpoint\n".encode())
        os._exit(128 + signum)
    _requested = signum
    # Not logging: a handler that takes the logging lock while the interrupted code holds it would deadlock.
    os.write(2, f"{signal.Signals(signum).name} received: stopping after this iteration (checkpoint first); "
                f"send it again to exit now\n".encode())


def request_stop(signum: int = signal.SIGTERM) -> None:
    """Ask for a graceful stop as if `signum` had arrived (the parent watcher uses it)."""
    _handle(signum, None)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT request a graceful stop instead of killing the process mid-step."""
    global _requested
    _requested = None
    previous = {s: signal.signal(s, _handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested = None


def stop_requested(runner: Any) -> int | None:
    """The signal that asked this run to stop, agreed by all processes (under DDP only some ranks may have received
    it, and a rank that stopped alone would leave the others waiting in a collective)."""
    wanted = _requested or 0
    accelerator = runner.accelerator
    if accelerator.num_processes > 1:
        import torch
        import torch.distributed as dist

        flag = torch.tensor([wanted], device=accelerator.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        wanted = int(flag.item())
    return wanted or None


def check_stop(runner: Any) -> None:
    """At an iteration boundary: if a stop was requested, save a checkpoint (through the CheckpointHook when there is
    one, so its name template and max_keep_ckpts apply; else `iter_<n>`) and raise
    TrainingInterrupted. Saved here, between iterations, the checkpoint resumes to the same weights as a run that
    was never stopped."""
    signum = stop_requested(runner)
    if signum is None:
        return
    iteration = runner.iter
    hook = next((h for h in runner.hooks if hasattr(h, "save_for_stop")), None)
    path = hook.save_for_stop(runner, iteration) if hook is not None else runner.save_checkpoint(f"iter_{iteration}")
    raise TrainingInterrupted(signum, iteration, path)


def report(exc: TrainingInterrupted) -> None:
    """The one line a stopped training prints (stderr may be a pipe whose reader is gone: never fail here)."""
    try:
        sys.stderr.write(f"{exc}\n")
        sys.stderr.flush()
    except OSError:
        pass
