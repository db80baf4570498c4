"""The learning rate (and momentum) at every iteration, computed exactly as training applies it, without training."""

from __future__ import annotations

from typing import Any

from torch import nn

from engine.data import epoch_length_of
from engine.hooks.param_scheduler_hook import step_epoch_schedulers, step_iteration_schedulers


def simulate_schedule(cfg: dict[str, Any], model: nn.Module | None = None,
                      epoch_length: int | None = None) -> list[dict[str, float]]:
    """One row per iteration (1-based `iter`): `lr` (base), `momentum` if any, `lr/<group>` with several groups.
    `epoch_length` (a running training's own) defaults to one process's, from the training dataset.

    Mirrors ParamSchedulerHook: the value logged at iteration i is the one its optimizer step used; iteration
    schedulers step after every iteration, epoch schedulers after every epoch's last iteration.
    """
    from engine import build
    from engine.optim.wrapper import OptimWrapper

    model = model if model is not None else build.build_model(cfg)
    optimizer = build.build_optimizer(cfg, model)
    wrapper = OptimWrapper(None, optimizer)
    epoch_length = epoch_length if epoch_length is not None else epoch_length_of(cfg, needed=True)
    schedulers = build.build_schedulers(cfg, wrapper, epoch_length)
    train = cfg["train_cfg"]
    by_epoch_loop = train["type"] == "EpochBasedTrainLoop"
    max_iters = train["max_epochs"] * epoch_length if by_epoch_loop else train["max_iters"]
    rows = []
    for i in range(max_iters):
        row = {"iter": i + 1, **wrapper.get_lr()}
        momentum = wrapper.get_momentum()
        if momentum is not None:
            row["momentum"] = momentum
        rows.append(row)
        step_iteration_schedulers(schedulers)
        if by_epoch_loop and (i + 1) % epoch_length == 0:
            step_epoch_schedulers(schedulers)
    return rows
