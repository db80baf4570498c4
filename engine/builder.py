"""Build the runner's parts from a validated config: accelerator, model, data, optimizer wrapper, schedulers, hooks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from engine.errors import UserError
from engine.resolve import resolve_type


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
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, GradientAccumulationPlugin, GradScalerKwargs

    ow = cfg["optim_wrapper"]
    handlers = []
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
    """The model from `model` (+ `num_classes` from `data.classes`)."""
    kwargs = {k: v for k, v in cfg["model"].items() if k != "type"}
    cls = resolve_type(cfg["model"]["type"], "model")
    return cls(num_classes=len(cfg["data"]["classes"]), **kwargs)


def build_dataset(cfg: dict[str, Any], split: str, *, augment: bool = False, root: Path | None = None) -> Any:
    from engine.seg.dataset import SegDataset

    data = cfg["data"]
    try:
        return SegDataset(root or Path(data["root"]), split, augment=augment and data["augment"]["flip"],
                          seed=cfg["seed"])
    except FileNotFoundError as exc:
        raise UserError(f"data.root: {exc}") from None


def build_dataloader(cfg: dict[str, Any], dataset: Any, *, train: bool) -> DataLoader:
    data = cfg["data"]
    generator = torch.Generator().manual_seed(cfg["seed"])
    return DataLoader(dataset, batch_size=data["batch_size"] if train else data["val_batch_size"], shuffle=train,
                      num_workers=data["num_workers"], generator=generator, drop_last=False,
                      persistent_workers=data["num_workers"] > 0)


def build_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """`optim` over the param groups `optim_wrapper.paramwise_cfg` / `constructor` describe."""
    from engine.optim.constructors import build_param_groups

    optim = cfg["optim"]
    kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in optim.items() if k != "type"}
    ow = cfg["optim_wrapper"]
    groups, _ = build_param_groups(model, kwargs, ow["paramwise_cfg"], ow["constructor"])
    return resolve_type(optim["type"], "optimizer")(groups, **kwargs)


def build_optim_wrapper(cfg: dict[str, Any], accelerator: Any, optimizer: torch.optim.Optimizer) -> Any:
    from engine.optim.wrapper import WRAPPERS

    ow = cfg["optim_wrapper"]
    static = float(ow["loss_scale"]) if not isinstance(ow["loss_scale"], (str, dict)) else None
    return WRAPPERS[ow["type"]](accelerator, optimizer, accumulative_counts=ow["accumulative_counts"],
                                clip_grad=ow["clip_grad"], static_loss_scale=static)


def build_schedulers(cfg: dict[str, Any], optim_wrapper: Any, epoch_length: int) -> list[Any]:
    """`param_scheduler` in order, acting on the wrapper's scheduler view (groups + base pseudo group)."""
    from engine.optim.schedulers import build_scheduler, resolve_by_epoch

    train = cfg["train_cfg"]
    by_epoch = train["type"] == "EpochBasedTrainLoop"
    out = []
    for entry in cfg["param_scheduler"]:
        entry_by_epoch = resolve_by_epoch(entry, by_epoch)
        max_end = train["max_epochs"] if entry_by_epoch else train["max_iters"]
        if max_end is None:  # an epoch loop's iteration count is known only once the data is loaded
            max_end = train["max_epochs"] * epoch_length
        out.append(build_scheduler(dict(entry), optim_wrapper.view, default_by_epoch=by_epoch,
                                   epoch_length=epoch_length, max_end=max_end))
    return out


def build_hooks(cfg: dict[str, Any]) -> list[tuple[Any, int | str | None]]:
    """(hook, priority from cfg or None) for default_hooks in order, then custom_hooks."""
    entries = list(cfg["default_hooks"].values()) + list(cfg["custom_hooks"])
    out = []
    for entry in entries:
        kwargs = {k: v for k, v in entry.items() if k not in ("type", "priority")}
        out.append((resolve_type(entry["type"], "hook")(**kwargs), entry.get("priority")))
    return out
