"""SyncBuffersHook: floating buffers averaged across two gloo processes at the right events; one process: no-op."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from engine.hooks import HOOKS
from engine.hooks.sync_buffers_hook import SyncBuffersHook
from tests.engine.fixtures import make_cfg, make_runner, weights_of


def _bn_runner(rank: int) -> Any:
    model = torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        model.running_mean.copy_(torch.tensor([1.0, 2.0]) * (rank + 1))  # rank 0: [1, 2], rank 1: [2, 4]
        model.running_var.fill_(rank + 1.0)
        model.num_batches_tracked.fill_(3 + rank)
    return SimpleNamespace(model=model, accelerator=SimpleNamespace(unwrap_model=lambda m: m))


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        hook, runner = SyncBuffersHook(), _bn_runner(rank)
        log = []
        hook.before_val_epoch(runner)  # iteration loop: no epoch end before this validation, so it syncs
        log.append(runner.model.running_mean.tolist())
        with torch.no_grad():
            runner.model.running_mean.add_(rank)  # drift again: [1.5, 3] and [2.5, 4]
        hook.after_train_epoch(runner)
        log.append(runner.model.running_mean.tolist())
        with torch.no_grad():
            runner.model.running_mean.add_(rank)
        hook.before_val_epoch(runner)  # right after an epoch end: already synced, left as it is
        log.append(runner.model.running_mean.tolist())
        log.append([runner.model.running_var.tolist(), int(runner.model.num_batches_tracked)])
        torch.save(log, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_end_with_equal_buffers(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    logs = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert logs[0][0] == logs[1][0] == [1.5, 3.0]
    assert logs[0][1] == logs[1][1] == [2.0, 3.5]
    assert logs[0][2] == [2.0, 3.5] and logs[1][2] == [3.0, 4.5]  # not synced twice in a row
    assert logs[0][3] == [[1.5, 1.5], 3] and logs[1][3] == [[1.5, 1.5], 4]  # integer buffers untouched


def test_one_process_changes_nothing(tmp_path: Path) -> None:
    runner = make_runner(make_cfg({"custom_hooks": [{"type": "SyncBuffersHook"}],
                                   "train_cfg": {"max_iters": 2, "val_interval": 1}}), tmp_path)
    bare = make_runner(make_cfg({"train_cfg": {"max_iters": 2, "val_interval": 1}}), tmp_path / "bare")
    runner.train()
    bare.train()
    assert any(isinstance(h, SyncBuffersHook) for h in runner.hooks)
    expected = weights_of(bare)
    assert all(torch.equal(v, expected[k]) for k, v in weights_of(runner).items())
    hook, fake = HOOKS["SyncBuffersHook"](), _bn_runner(0)
    hook.after_train_epoch(fake)
    assert fake.model.running_mean.tolist() == [1.0, 2.0]
