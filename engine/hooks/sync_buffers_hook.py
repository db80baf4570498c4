"""SyncBuffersHook: average the model's floating buffers (BatchNorm statistics) across processes."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from engine.hooks.hook import Hook, Priority


def sync_buffers(model: torch.nn.Module) -> None:
    """Mean all-reduce of every floating buffer of `model`; nothing in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    world = dist.get_world_size()
    # Integer buffers (num_batches_tracked) count the same steps on every rank and have no integer mean.
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    with torch.no_grad():
        for buffer in buffers:
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(world)


class SyncBuffersHook(Hook):
    """MMEngine's SyncBuffersHook: DDP keeps parameters equal across ranks but each rank's BatchNorm statistics see
    only its own data, so validation (and the saved weights) would depend on the rank. Averages them after each train
    epoch, and before a validation that no epoch end preceded (the iteration loop validates mid-epoch)."""

    priority = Priority.NORMAL

    def __init__(self) -> None:
        self._synced = False  # since the last validation

    def after_train_epoch(self, runner: Any) -> None:
        sync_buffers(runner.accelerator.unwrap_model(runner.model))
        self._synced = True

    def before_val_epoch(self, runner: Any) -> None:
        if not self._synced:
            sync_buffers(runner.accelerator.unwrap_model(runner.model))
        self._synced = False
