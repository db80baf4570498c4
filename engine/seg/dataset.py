"""Torch dataset over prepared segmentation arrays: the dense form :mod:`engine.seg.synthetic` writes and the flat
form of :mod:`engine.seg.folder` (images of varied sizes), both checked as they are opened and read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.seg.prepared import PreparedDataError, check_labels, open_npy

# Used to derive a per-item flip decision that depends only on (seed, epoch, index), not on worker order.
_EPOCH_STRIDE = 1_000_003


class SegDataset(Dataset):
    """Items are ``(image, mask)``: a normalised float32 ``3 x H x W`` image and an int64 ``H x W`` label map.

    Two storage forms (``meta.json`` ``storage``): ``dense`` holds ``images.npy`` ``(N, H, W, 3)`` and ``masks.npy``
    ``(N, H, W)``; ``flat`` holds every split's pixels back to back, ``images.npy`` ``(P, 3)``, ``masks.npy`` ``(P,)``,
    and ``index.npy`` ``(N, 3)`` rows of (first pixel, height, width), so images keep their own sizes. Each array's
    size is checked against its header before it is memory-mapped, and each mask read is checked for labels outside
    the classes (one ``max()``), so corrupt data fails with the file, the sample and the fix, not in the loss.

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
        if not meta_path.is_file():
            raise FileNotFoundError(f"dataset file {meta_path} is missing; generate the dataset first with the "
                                    f"prepare stage (`dvc repro prepare`)")
        self.meta: dict = json.loads(meta_path.read_text())
        if classes is not None and list(classes) != self.meta["classes"]:
            # The data on disk was generated for other classes: its masks would not match the model's outputs.
            raise ValueError(f"{self.root} holds classes {self.meta['classes']}, but classes is {list(classes)}; "
                             f"regenerate it (dvc repro prepare)")
        self.num_classes = len(self.meta["classes"])
        self.ignore_index = int(self.meta.get("ignore_index", 255))
        # A layout without a labelled test split (ADE20K, Cityscapes) evaluates on val, as MMSeg's configs do.
        self.split_dir = self.root / self.meta.get("aliases", {}).get(split, split)
        self.flat = self.meta.get("storage", "dense") == "flat"
        paths = [self.split_dir / name for name in ("images.npy", "masks.npy", *(("index.npy",) if self.flat else ()))]
        for path in paths:
            if not path.is_file():
                raise FileNotFoundError(f"dataset file {path} is missing; generate the dataset first with the "
                                        f"prepare stage (`dvc repro prepare`)")
        # mmap keeps start-up cheap and lets forked loader workers share the pages instead of copying arrays.
        self.images = open_npy(paths[0], dtype=np.uint8, ndim=2 if self.flat else 4)
        self.masks = open_npy(paths[1], dtype=np.uint8, ndim=1 if self.flat else 3)
        self.index = open_npy(paths[2], dtype=np.int64, ndim=2) if self.flat else None
        self._check_shapes()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def _check_shapes(self) -> None:
        """The arrays must describe the same samples; cheap (shapes and the index's last row only)."""
        where = f"data.root: {self.split_dir}"
        if self.index is None:
            if self.images.shape[:3] != self.masks.shape or self.images.shape[3:] != (3,):
                raise PreparedDataError(f"{where}: images.npy {self.images.shape} and masks.npy {self.masks.shape} "
                                        f"do not describe the same (N, H, W) samples; rerun the prepare stage "
                                        f"(`dvc repro prepare`)")
            return
        pixels = self.masks.shape[0]
        ends_ok = (self.index.shape[1:] == (3,) and (len(self.index) == 0 or int(self.index[-1, 0])
                   + int(self.index[-1, 1]) * int(self.index[-1, 2]) == pixels))
        if self.images.shape != (pixels, 3) or not ends_ok:
            raise PreparedDataError(f"{where}: images.npy {self.images.shape}, masks.npy {self.masks.shape} and "
                                    f"index.npy {self.index.shape} do not agree on the pixels; rerun the prepare "
                                    f"stage (`dvc repro prepare`)")

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips are drawn; call before iterating each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.images)

    def _flip(self, index: int) -> bool:
        key = (self.seed * _EPOCH_STRIDE**2 + self.epoch * _EPOCH_STRIDE + index) % 2**63
        gen = torch.Generator().manual_seed(key)
        return bool(torch.rand((), generator=gen) < 0.5)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.index is not None:
            start, height, width = (int(v) for v in self.index[index])
            pixels = slice(start, start + height * width)
            raw_image = np.array(self.images[pixels]).reshape(height, width, 3)
            raw_mask = np.array(self.masks[pixels]).reshape(height, width)
        else:
            raw_image, raw_mask = np.array(self.images[index]), np.array(self.masks[index])
        check_labels(raw_mask, self.num_classes, self.ignore_index, f"{self.split_dir / 'masks.npy'}, {self.split} "
                     f"sample {index}")
        image = torch.from_numpy(raw_image).permute(2, 0, 1).float()
        mask = torch.from_numpy(raw_mask).long()
        image = (image - self.mean) / self.std
        if self.augment and self._flip(index):
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()
