"""DistSamplerSeedHook: re-seed the sampler at each epoch so every epoch (and every rank) gets its own order."""

from __future__ import annotations

from typing import Any

from engine.hooks.hook import Hook, Priority


class DistSamplerSeedHook(Hook):
    """Calls `set_epoch(runner.epoch)` on the train dataloader (Accelerate's seedable sampler) and its dataset."""

    priority = Priority.NORMAL

    def before_train_epoch(self, runner: Any) -> None:
        loop = runner.train_loop
        # The iteration loop's stream re-seeds itself at each data epoch; this covers the epoch loop's boundaries.
        targets: tuple[Any, ...] = (loop.dataloader, getattr(loop.dataloader, "dataset", None))
        for target in targets:
            if hasattr(target, "set_epoch"):
                target.set_epoch(runner.epoch)
