"""The composition root: a checked config becomes built parts (accelerator, model, loaders, evaluator, optimizer
wrapper, schedulers, hooks, loops), top-down, handed to a Runner that builds nothing itself."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from engine.config.resolve import resolve_type
from engine.construct import bound_kwargs, call, offers
from engine.data import build_dataloader, build_dataset, node_kwargs
from engine.errors import UserError

if TYPE_CHECKING:
    from engine.runner import Runner



def mixed_precision(cfg: dict[str, Any]) -> str:
    """Accelerate's `mixed_precision` for `optim_wrapper`; float16 without CUDA is refused, not silently fp32."""
    ow = cfg["optim_wrapper"]
    if ow["type"] != "AmpOptimWrapper":
        return "no"
    cuda = torch.cuda.is_available()
    dtype = ow["dtype"] or ("float16" if cuda else "bfloat16")
    if dtype == "float16" and not cuda:
        raise UserError("optim_wrapper.dtype: float16 mixed precision needs a CUDA GPU and none is available "
                        "(torch would silently train in fp32); use dtype: bfloat16 on CPU")
    return {"float16": "fp16", "bfloat16": "bf16"}[dtype]


def build_accelerator(cfg: dict[str, Any]) -> Any:
    """An Accelerator whose accumulation, precision and data seeding follow params.yaml."""
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import (
        DataLoaderConfiguration,
        GradientAccumulationPlugin,
        GradScalerKwargs,
        InitProcessGroupKwargs,
    )

    ow = cfg["optim_wrapper"]
    handlers: list[Any] = []
    if "dist" in cfg:
        # A rank that waits longer than dist.timeout for the others fails instead of hanging; backend null = the
        # dataclass's default, which Accelerate reads as "its own choice" (nccl on CUDA, gloo on CPU).
        process_group = {"backend": cfg["dist"]["backend"]} if cfg["dist"]["backend"] else {}
        handlers.append(InitProcessGroupKwargs(timeout=timedelta(seconds=cfg["dist"]["timeout"]), **process_group))
    if isinstance(ow["loss_scale"], dict):
        handlers.append(GradScalerKwargs(**ow["loss_scale"]))
    elif not isinstance(ow["loss_scale"], str):
        handlers.append(GradScalerKwargs(init_scale=float(ow["loss_scale"])))
    return Accelerator(
        mixed_precision=mixed_precision(cfg),
        cpu=not torch.cuda.is_available(),
        # The loop decides where a window ends (OptimWrapper.begin_window): an iteration loop's windows run across
        # epoch boundaries, an epoch loop closes its last (short) window at the end of the data.
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=ow["accumulative_counts"], sync_with_dataloader=False, adjust_scheduler=False),
        # The seedable sampler makes the order a function of (seed, epoch), which exact resume relies on.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=cfg["seed"]),
        step_scheduler_with_optimizer=False,
        kwargs_handlers=handlers,
    )


def seed_everything(cfg: dict[str, Any]) -> None:
    """Seed python/numpy/torch and switch deterministic algorithms on or off."""
    from accelerate.utils import set_seed

    if cfg["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # CUDA's deterministic GEMMs require it
    set_seed(cfg["seed"], deterministic=cfg["deterministic"])


def build_model(cfg: dict[str, Any]) -> nn.Module:
    """`model`, offered `num_classes` / `classes` from `data.classes` when its signature asks for them."""
    node = cfg["model"]
    target = resolve_type(node["type"], "model")
    model = call(target, bound_kwargs(target, node_kwargs(node), offers(cfg, "model")), "model")
    if not isinstance(model, nn.Module):
        raise UserError(f"model.type: {node['type']} built a {type(model).__name__}, not a torch.nn.Module")
    return model


def build_evaluator(cfg: dict[str, Any]) -> Any:
    """`evaluator`, offered `num_classes` / `classes` when its signature asks for them."""
    node = cfg["evaluator"]
    target = resolve_type(node["type"], "evaluator")
    evaluator = call(target, bound_kwargs(target, node_kwargs(node), offers(cfg, "evaluator")), "evaluator")
    missing = [m for m in ("reset", "process", "compute") if not callable(getattr(evaluator, m, None))]
    if missing:
        raise UserError(f"evaluator.type: {node['type']} has no {', '.join(missing)} method(s); an evaluator needs "
                        f"reset(), process(batch, outputs) and compute() -> dict of metrics")
    return evaluator


def optimizer_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """`optim`'s keyword arguments as torch takes them; an unset `lr` becomes the optimizer's own default, written
    out so that param-group multipliers and schedulers scale the value actually used (the check warns about it)."""
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in cfg["optim"].items() if k != "type"}
    if kwargs.get("lr") is None:
        default = default_lr(resolve_type(cfg["optim"]["type"], "optimizer"))
        kwargs.pop("lr", None)
        if default is not None:
            kwargs["lr"] = default
    return kwargs


def default_lr(optimizer_cls: Any) -> float | None:
    """The `lr` default of an optimizer class's signature (None when it has none, or it is not a number)."""
    import inspect

    try:
        default = inspect.signature(optimizer_cls).parameters["lr"].default
    except (KeyError, TypeError, ValueError):
        return None
    if isinstance(default, torch.Tensor):
        default = float(default)
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def build_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """`optim` over the param groups `optim_wrapper.paramwise_cfg` / `constructor` describe."""
    from engine.optim.constructors import build_param_groups

    kwargs = optimizer_kwargs(cfg)
    ow = cfg["optim_wrapper"]
    groups, _ = build_param_groups(model, kwargs, ow["paramwise_cfg"], ow["constructor"])
    return resolve_type(cfg["optim"]["type"], "optimizer")(groups, **kwargs)


def build_optim_wrapper(cfg: dict[str, Any], accelerator: Any, optimizer: torch.optim.Optimizer) -> Any:
    from engine.optim.wrapper import WRAPPERS

    ow = cfg["optim_wrapper"]
    static = float(ow["loss_scale"]) if not isinstance(ow["loss_scale"], (str, dict)) else None
    return WRAPPERS[ow["type"]](accelerator, optimizer, accumulative_counts=ow["accumulative_counts"],
                                clip_grad=ow["clip_grad"], static_loss_scale=static)


def loader_epoch_length(train_dataloader: Any, accumulative_counts: int) -> int:
    """Iterations (optimizer steps) per epoch of a built train loader: its batches, a window of
    `accumulative_counts` per step, the last window possibly short."""
    return -(-len(train_dataloader) // accumulative_counts)


def build_schedulers(cfg: dict[str, Any], optim_wrapper: Any, epoch_length: int) -> list[Any]:
    """`param_scheduler` in order, acting on the wrapper's scheduler view (groups + base pseudo group).

    `epoch_length` is train iterations per epoch; an entry without `end` runs to the end of training in its own
    unit (`training_end`). A refused entry is a UserError naming its key path, as `trainline check` words it.
    """
    from engine.optim.schedulers import build_scheduler, entry_problem, resolve_by_epoch, training_end

    train = cfg["train_cfg"]
    by_epoch = train["type"] == "EpochBasedTrainLoop"
    out = []
    for i, entry in enumerate(cfg["param_scheduler"]):
        max_end = training_end(train, by_epoch=resolve_by_epoch(entry, by_epoch) is True, epoch_length=epoch_length)
        try:
            out.append(build_scheduler(dict(entry), optim_wrapper.view, default_by_epoch=by_epoch,
                                       epoch_length=epoch_length, max_end=max_end))
        except (ValueError, TypeError, KeyError) as exc:
            raise UserError(entry_problem(f"param_scheduler.{i}", exc)) from None
    return out


def build_hooks(cfg: dict[str, Any]) -> list[tuple[Any, int | str | None]]:
    """(hook, priority from cfg or None) for default_hooks in order, then custom_hooks."""
    entries = list(cfg["default_hooks"].values()) + list(cfg["custom_hooks"])
    out = []
    for entry in entries:
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "priority")}
        out.append((resolve_type(entry["type"], "hook")(**kwargs), entry.get("priority")))
    return out


def _placement(accelerator: Any, others: int, loaders: int) -> list[bool | None]:
    """Accelerate's `device_placement` for (`others` objects, then `loaders` dataloaders): on a CPU the loaders'
    batches already are where the model is, and moving them there (a recursive walk and a `.to` per tensor, every
    batch) is skipped; everything else keeps Accelerate's default."""
    on_cpu = accelerator.device.type == "cpu"
    return [None] * others + [False if on_cpu else None] * loaders


def build_training(cfg: dict[str, Any], work_root: Path) -> Runner:
    """A Runner ready to train: loaders prepared by Accelerate, loops, schedulers with the real epoch length, hooks."""
    from engine.loops import TRAIN_LOOPS, ValLoop
    from engine.runner import Runner

    seed_everything(cfg)
    accelerator = build_accelerator(cfg)
    model = build_model(cfg)
    evaluator = build_evaluator(cfg)
    train_dl = build_dataloader(cfg, build_dataset(cfg, "train"), train=True)
    val_dl = build_dataloader(cfg, build_dataset(cfg, "val"), train=False)
    optimizer = build_optimizer(cfg, model)
    model, optimizer, train_dl, val_dl = accelerator.prepare(model, optimizer, train_dl, val_dl,
                                                             device_placement=_placement(accelerator, 2, 2))
    optim_wrapper = build_optim_wrapper(cfg, accelerator, optimizer)
    train_kwargs = {k: v for k, v in cfg["train_cfg"].items() if k != "type" and v is not None}
    train_loop = TRAIN_LOOPS[cfg["train_cfg"]["type"]](train_dl, **train_kwargs)
    val_loop = ValLoop(val_dl, evaluator)
    epoch_length = loader_epoch_length(train_dl, optim_wrapper.accumulative_counts)
    schedulers = build_schedulers(cfg, optim_wrapper, epoch_length)
    return Runner(cfg, work_root, mode="train", accelerator=accelerator, model=model, evaluator=evaluator,
                  optim_wrapper=optim_wrapper, schedulers=schedulers, train_loop=train_loop, val_loop=val_loop,
                  hooks=build_hooks(cfg))


def build_testing(cfg: dict[str, Any], work_root: Path) -> Runner:
    """A Runner that scores trained weights on `eval.split`, with the hooks that observe testing."""
    from engine.loops import TestLoop
    from engine.runner import Runner

    seed_everything(cfg)
    accelerator = build_accelerator(cfg)
    model = build_model(cfg)
    evaluator = build_evaluator(cfg)
    test_dl = build_dataloader(cfg, build_dataset(cfg, cfg["eval"]["split"]), train=False)
    model, test_dl = accelerator.prepare(model, test_dl, device_placement=_placement(accelerator, 1, 1))
    return Runner(cfg, work_root, mode="test", accelerator=accelerator, model=model, evaluator=evaluator,
                  test_loop=TestLoop(test_dl, evaluator), hooks=build_hooks(cfg))


def run_prepare(cfg: dict[str, Any]) -> Any:
    """Call `prepare` (offered `root`, `seed`, `classes`); returns what it returns."""
    node = cfg["prepare"]
    if node is None:
        raise UserError("prepare: null, so there is nothing to prepare; the data in data.root is used as it is "
                        "(remove the prepare stage from dvc.yaml, or set prepare: {type: ...})")
    target = resolve_type(node["type"], "prepare")
    logging.getLogger("trainline").info("prepare: %s -> %s", node["type"], cfg["data"]["root"])
    return call(target, bound_kwargs(target, node_kwargs(node), offers(cfg, "prepare")), "prepare")
