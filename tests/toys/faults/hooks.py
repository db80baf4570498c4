"""A hook that kills its own process on one rank at one iteration, as an OOM kill or a crashed GPU would."""

from __future__ import annotations

import os
from typing import Any

from engine.hooks.hook import Hook


class DieOnRank(Hook):
    """After iteration `at`, the process of global rank `rank` ends at once with `code` (no cleanup, no exception)."""

    def __init__(self, rank: int = 1, at: int = 2, code: int = 3) -> None:
        super().__init__()
        self.rank, self.at, self.code = rank, at, code

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter == self.at and runner.accelerator.process_index == self.rank:
            os.write(2, f"DieOnRank: rank {self.rank} exits {self.code} after iteration {self.at}\n".encode())
            os._exit(self.code)
