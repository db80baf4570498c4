"""The data side of a run: one dataset per split from `data.dataset`, the collate function, and the loaders."""

from __future__ import annotations

import math
from typing import Any

from engine.config.resolve import resolve_type
from engine.construct import bound_kwargs, call, offers
from engine.errors import UserError

SPLITS = ("train", "val", "test")


def node_kwargs(node: dict[str, Any]) -> dict[str, Any]:
    """A `{type, ...}` node's keyword arguments."""
    return {k: v for k, v in node.items() if k != "type"}


def build_dataset(cfg: dict[str, Any], split: str) -> Any:
    """`data.dataset` for `split` (train gets the train transforms: the dataset decides from `split`)."""
    node = cfg["data"]["dataset"]
    target = resolve_type(node["type"], "dataset")
    kwargs = bound_kwargs(target, node_kwargs(node), {**offers(cfg, "dataset"), "split": split})
    try:
        return call(target, kwargs, "data.dataset")
    except (FileNotFoundError, NotADirectoryError) as exc:
        hint = ("run the prepare stage first (dvc repro prepare)" if cfg.get("prepare")
                else "prepare is null, so the data must already be there")
        raise UserError(f"data.root: {exc}; {hint}") from None


def collate_fn(cfg: dict[str, Any]) -> Any:
    """The configured collate function, or None for torch's default."""
    name = cfg["data"]["collate_fn"]
    if name is None:
        return None
    try:
        return resolve_type(name, "collate_fn")
    except LookupError as exc:
        raise UserError(f"data.collate_fn: {exc}") from None


class BatchSizeError(UserError):
    """Items of one batch that cannot be stacked (images of different sizes). A DataLoader worker re-raises it as
    ``type(exc)("Caught ... Original Traceback ...")``; only the original message is kept from such text."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if message.startswith("Caught ") and marker in message:
            message = message.rstrip().rsplit(marker, 1)[-1]
        super().__init__(message)


class StackingCollate:
    """torch's default collate, with the stacking failure of differently sized items turned into one line naming
    the batch size key (`data.batch_size` or `data.val_batch_size`); a class so that loader workers can pickle it."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, batch: list[Any]) -> Any:
        from torch.utils.data import default_collate

        try:
            return default_collate(batch)
        except RuntimeError as exc:
            if "stack expects each tensor to be equal size" not in str(exc):
                raise
            heads = [item[0] if isinstance(item, (tuple, list)) else item for item in batch]
            shapes = dict.fromkeys("x".join(map(str, h.shape)) for h in heads if hasattr(h, "shape"))
            shown = " and ".join(list(shapes)[:2])
            raise BatchSizeError(f"{self.key}: the items of one batch have different sizes ({shown}), so they "
                                 f"cannot be stacked; set {self.key}: 1, or make the dataset's items one size "
                                 f"(crop, resize or pad them)") from None


def build_dataloader(cfg: dict[str, Any], dataset: Any, *, train: bool) -> Any:
    """A seeded loader: shuffled for training, in order for validation and test."""
    import torch
    from torch.utils.data import DataLoader

    data = cfg["data"]
    generator = torch.Generator().manual_seed(cfg["seed"])
    key = "batch_size" if train else "val_batch_size"
    return DataLoader(dataset, batch_size=data[key], shuffle=train,
                      num_workers=data["num_workers"], generator=generator,
                      drop_last=data["drop_last"] and train, pin_memory=data["pin_memory"],
                      collate_fn=collate_fn(cfg) or StackingCollate(f"data.{key}"),
                      persistent_workers=data["num_workers"] > 0)


def iters_per_epoch(cfg: dict[str, Any], num_items: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch of `num_items` training items (what MMEngine calls the epoch length)."""
    data = cfg["data"]
    per_process = math.ceil(num_items / world_size)
    batches = per_process // data["batch_size"] if data["drop_last"] else math.ceil(per_process / data["batch_size"])
    return max(1, math.ceil(batches / cfg["optim_wrapper"]["accumulative_counts"]))


def needs_epoch_length(cfg: dict[str, Any]) -> bool:
    """Whether the schedule depends on how many iterations an epoch has (an epoch loop or an epoch scheduler)."""
    if cfg["train_cfg"]["type"] == "EpochBasedTrainLoop":
        return True
    return any(isinstance(e, dict) and (e.get("by_epoch") or e.get("convert_to_iter_based"))
               for e in cfg["param_scheduler"])


def epoch_length_of(cfg: dict[str, Any], *, needed: bool = False, world_size: int = 1) -> int:
    """Iterations per epoch from the training dataset's length. When the data is not there yet: 1 if nothing
    depends on it, else a UserError (`needed=True`) saying to run prepare."""
    try:
        num_items = len(build_dataset(cfg, "train"))
    except UserError as exc:
        if needed and needs_epoch_length(cfg):
            raise UserError(f"{exc}; the schedule depends on the epoch length, which needs the training data"
                            ) from None
        return 1
    except TypeError:  # an iterable dataset without __len__
        if needed and needs_epoch_length(cfg):
            raise UserError("data.dataset: has no len(), so an epoch's length is unknown; use an "
                            "IterBasedTrainLoop and iteration-based schedulers") from None
        return 1
    return iters_per_epoch(cfg, num_items, world_size)
