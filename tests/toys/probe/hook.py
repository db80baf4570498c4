"""ProbeHook: after each train epoch (after every other hook), each rank writes `probe/rank<r>_epoch<e>.pt` with its
model's floating buffers and a fingerprint of every batch it trained on that epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.hooks.hook import Hook, Priority


class ProbeHook(Hook):
    priority = Priority.LOWEST

    def __init__(self) -> None:
        self.batches: list[float] = []

    def before_train_epoch(self, runner: Any) -> None:
        self.batches = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self.batches.append(_fingerprint(data_batch))

    def after_train_epoch(self, runner: Any) -> None:
        model = runner.accelerator.unwrap_model(runner.model)
        buffers = {name: b.detach().cpu().clone() for name, b in model.named_buffers() if b.is_floating_point()}
        out = Path("probe")
        out.mkdir(exist_ok=True)
        torch.save({"buffers": buffers, "batches": self.batches},
                   out / f"rank{runner.accelerator.process_index}_epoch{runner.epoch}.pt")


def _fingerprint(batch: Any) -> float:
    """The sum of every tensor in a batch (or a window of micro-batches): differs between different items."""
    if isinstance(batch, torch.Tensor):
        return float(batch.double().sum())
    if isinstance(batch, (list, tuple)):
        return sum(_fingerprint(b) for b in batch)
    return 0.0
