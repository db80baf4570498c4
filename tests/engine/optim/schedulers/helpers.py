"""Shared pieces of the scheduler tests: toy optimizers, an engine-like optimizer view, stepping and building."""

from __future__ import annotations

from typing import Any

import torch

from engine.optim.schedulers import ParamScheduler, build_scheduler

ETA = 1e-4
REL = 1e-12


def sgd(lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def adamw(lr: float = 6e-5) -> torch.optim.AdamW:
    return torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr, betas=(0.9, 0.999))


class View:
    """An optimizer view like the engine's: the real groups plus a plain-dict pseudo group for the base settings."""

    def __init__(self, optimizer: torch.optim.Optimizer, pseudo: dict[str, Any]) -> None:
        self.optimizer, self.pseudo = optimizer, pseudo

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups + [self.pseudo]


def read(optimizer: Any, kind: str, group: int = 0) -> float:
    g = optimizer.param_groups[group]
    if kind == 'betas':
        # Adam family: the scheduled momentum must be written back into betas[0] as a tuple, betas[1] untouched.
        assert isinstance(g['betas'], tuple) and g['betas'][1] == 0.999
        assert g['momentum'] == g['betas'][0]
        return g['betas'][0]
    return g[kind]



def simulate(optimizer: Any, schedulers: list, n: int, key: str = 'lr') -> list[float]:
    """Value used by iteration i = value before the i-th step() after construction (MMEngine's after_train_iter)."""
    values = []
    for _ in range(n):
        values.append(optimizer.param_groups[0][key])
        for scheduler in schedulers:
            scheduler.step()
    return values



def build(cfg: dict, optimizer: Any = None, *, default_by_epoch: bool = False, epoch_length: int | None = None,
           max_end: int = 100) -> ParamScheduler:
    return build_scheduler(cfg, optimizer or sgd(), default_by_epoch=default_by_epoch, epoch_length=epoch_length,
                           max_end=max_end)

