"""Torch dataset over the synthetic segmentation arrays written by :mod:`engine.seg.synthetic`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

# Used to derive a per-item flip decision that depends only on (seed, epoch, index), not on worker order.
_EPOCH_STRIDE = 1_000_003


class SegDataset(Dataset):
    """Items are ``(image, mask)``: a normalised float32 ``3 x H x W`` image and an int64 ``H x W`` label map.

    The train split gets the train transforms: with ``flip=True`` each item is flipped horizontally with probability
    0.5, decided by a generator seeded from ``seed``, the epoch (see :meth:`set_epoch`) and the index, so a run is
    reproducible whatever the number of loader workers or processes. Other splits are never flipped.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        flip: bool = True,
        classes: list[str] | None = None,
        mean: tuple[float, float, float] = (123.675, 116.28, 103.53),
        std: tuple[float, float, float] = (58.395, 57.12, 57.375),
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.split = split
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        self.augment = flip and split == "train"
        self.seed = seed
        self.epoch = 0
        meta_path = self.root / "meta.json"
        images_path = self.root / split / "images.npy"
        masks_path = self.root / split / "masks.npy"
        for path in (meta_path, images_path, masks_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"dataset file {path} is missing; generate the dataset first with the prepare stage "
                    f"(`dvc repro prepare`)"
                )
        self.meta: dict = json.loads(meta_path.read_text())
        if classes is not None and list(classes) != self.meta["classes"]:
            # The data on disk was generated for other classes: its masks would not match the model's outputs.
            raise ValueError(f"{self.root} holds classes {self.meta['classes']}, but classes is {list(classes)}; "
                             f"regenerate it (dvc repro prepare)")
        # mmap keeps start-up cheap and lets forked loader workers share the pages instead of copying arrays.
        self.images = np.load(images_path, mmap_mode="r")
        self.masks = np.load(masks_path, mmap_mode="r")
        if len(self.images) != len(self.masks):
            raise ValueError(f"{split}: {len(self.images)} images but {len(self.masks)} masks")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips are drawn; call before iterating each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images)

    def _flip(self, index: int) -> bool:
        key = (self.seed * _EPOCH_STRIDE**2 + self.epoch * _EPOCH_STRIDE + index) % 2**63
        gen = torch.Generator().manual_seed(key)
        return bool(torch.rand((), generator=gen) < 0.5)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(np.array(self.images[index])).permute(2, 0, 1).float()
        mask = torch.from_numpy(np.array(self.masks[index])).long()
        image = (image - self.mean) / self.std
        if self.augment and self._flip(index):
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()
