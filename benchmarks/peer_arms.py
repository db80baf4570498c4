"""The peer frameworks' training loops for the benchmarks: a Lightning Trainer and an MMEngine Runner on a given
model, dataset and data order. Lightning and MMEngine are imported only here, inside the functions, and exist only in
the benchmark venv that `make bench` builds (`.bench-venv`); the project never needs them."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler[int]):
    """Epoch `e` visits `torch.randperm(n)` drawn from a generator seeded with `seed + e`: the order of Accelerate's
    seedable sampler, which the engine's loader uses, so every arm trains on the same batches in the same order.

    `set_epoch` (what Accelerate, Lightning and the engine call at each epoch) and the epoch's end both move it on.
    `infinite`: one epoch after another without end, for MMEngine's iteration loop, which sleeps 2 s every time a
    finite loader runs out ("prevent possible deadlock")."""

    def __init__(self, n: int, seed: int, infinite: bool = False) -> None:
        self.n, self.seed, self.infinite, self.epoch = n, seed, infinite, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
            yield from order
            self.epoch += 1
            if not self.infinite:
                return


class Clock:
    """Wall time from the start of iteration `warmup` to the end of the last iteration seen."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.begin, self.end = warmup, 0.0, 0.0

    def start(self, iteration: int) -> None:
        if iteration == self.warmup:
            self.begin = time.perf_counter()

    def stop(self) -> None:
        self.end = time.perf_counter()

    def per_step(self, steps: int) -> float:
        return (self.end - self.begin) / (steps - self.warmup)


def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sum of a model's `loss*` outputs (what the engine and MMEngine's `parse_losses` optimize)."""
    return sum((v for k, v in losses.items() if k.startswith("loss")), torch.zeros(()))


def lightning_fit(model: nn.Module, loader: DataLoader, steps: int, optimizer: Callable[[Any], Any],
                  clock: Clock, work: Path) -> None:
    """`steps` optimizer steps of a LightningModule around `model` by a Trainer with logger, checkpointing, progress
    bar, model summary, sanity validation and the distributed sampler off (the reference's fair configuration)."""
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return total_loss(self.inner(batch, mode="loss"))

        def configure_optimizers(self) -> Any:
            return optimizer(self.inner.parameters())

    class Timer(pl.Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            clock.start(trainer.global_step)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
            clock.stop()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "does not have many workers" and the like: advice, not part of a step
        trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=steps, max_epochs=-1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False,
                             callbacks=[Timer()], default_root_dir=str(work))
        trainer.fit(Module(), train_dataloaders=loader)


def mmengine_fit(model: nn.Module, dataset: Any, batch_size: int, seed: int, steps: int,
                 optimizer: Callable[[Any], Any], clock: Clock, work: Path) -> None:
    """`steps` iterations of an MMEngine Runner (IterBasedTrainLoop) around `model`: logger and checkpoint hooks off,
    the other default hooks on, an infinite sampler in the engine's order (see `EpochSampler`)."""
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.optim import OptimWrapper
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, inputs: Any, data_samples: Any = None, mode: str = "tensor") -> Any:
            return self.inner((inputs, data_samples), mode="loss" if mode == "loss" else "predict")

    class Timer(Hook):
        priority = "LOWEST"

        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            clock.start(runner.iter)

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            clock.stop()

    loader = DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), seed, infinite=True))
    runner = Runner(model=Model(), work_dir=str(work), train_dataloader=loader,
                    optim_wrapper=OptimWrapper(optimizer(model.parameters())),
                    train_cfg={"by_epoch": False, "max_iters": steps, "val_interval": 10 * steps},
                    default_hooks={"logger": None, "checkpoint": None}, custom_hooks=[Timer()],
                    randomness={"seed": seed, "deterministic": True}, log_level="WARNING",
                    experiment_name=f"bench-{uuid.uuid4().hex[:8]}")
    runner.train()


# -- the callgrind arms of benchmarks/instructions.py (tiny MLP, its loader and SGD) -------------------------------

def instructions_lightning(steps: int, work: Path) -> None:
    from benchmarks.instructions import MLP, _loader

    lightning_fit(MLP(), _loader(), steps, lambda p: torch.optim.SGD(p, lr=0.01), Clock(0), work)


def instructions_mmengine(steps: int, work: Path) -> None:
    from benchmarks.instructions import MLP, regression

    # MMEngine's sampler seed 2, as the other arms' loader generator
    mmengine_fit(MLP(), regression(), 64, 2, steps, lambda p: torch.optim.SGD(p, lr=0.01), Clock(0), work)
