"""Torch dataset over prepared segmentation arrays: the dense form :mod:`engine.seg.synthetic` writes and the flat
form of :mod:`engine.seg.folder` (images of varied sizes), both checked as they are opened and read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from engine.errors import ConfigError
from engine.seg.prepared import PreparedDataError, check_labels, open_npy
from engine.seg.transforms import IMAGENET_MEAN, IMAGENET_STD, Normalize
from engine.seg.transforms_pipeline import Pipeline, item_generator, pipeline_problems


class SegDataset(Dataset):
    """Items are ``(image, mask)``: a normalised float32 ``3 x H x W`` image and an int64 ``H x W`` label map.

    Two storage forms (``meta.json`` ``storage``): ``dense`` holds ``images.npy`` ``(N, H, W, 3)`` and ``masks.npy``
    ``(N, H, W)``; ``flat`` holds every split's pixels back to back, ``images.npy`` ``(P, 3)``, ``masks.npy`` ``(P,)``,
    and ``index.npy`` ``(N, 3)`` rows of (first pixel, height, width), so images keep their own sizes. Each array's
    size is checked against its header before it is memory-mapped, and each mask read is checked for labels outside
    the classes (one ``max()``), so corrupt data fails with the file, the sample and the fix, not in the loss.

    Without pipelines, the train split gets the plain train transform: with ``flip`` (the default) each item is
    flipped horizontally with probability 0.5; every split is normalised with ``mean`` and ``std``. With
    ``pipeline`` (train) and ``test_pipeline`` (val and test), MMSeg's transforms run in the order given (see
    docs/datasets.md, "Pipelines"); ``flip`` is then left unset (a RandomFlip step does it). Every random decision
    comes from a generator seeded from ``seed``, the epoch (see :meth:`set_epoch`) and the index, so a run is
    reproducible whatever the number of loader workers or processes.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        flip: bool | None = None,
        pipeline: list[dict] | None = None,
        test_pipeline: list[dict] | None = None,
        classes: list[str] | None = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.split = split
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        problems = self.config_problems({"flip": flip, "pipeline": pipeline, "test_pipeline": test_pipeline,
                                         "mean": mean, "std": std}, "data.dataset")
        if problems:
            raise ConfigError(problems)
        steps = pipeline if split == "train" else test_pipeline
        # Built before any file is read, so a pipeline mistake is reported even when the data is not there yet.
        self.pipeline = None if steps is None else Pipeline(
            steps, f"data.dataset.{'pipeline' if split == 'train' else 'test_pipeline'}", test=split != "train",
            mean=mean, std=std)
        self.augment = (flip is not False) and pipeline is None and split == "train"
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

    @staticmethod
    def config_problems(kwargs: dict, path: str) -> list[str]:
        """What `trainline check` reports about these arguments beyond their names (the pipelines' transforms and
        their values), each naming its key under `path`; empty when the build will accept them."""
        problems = []
        flip = kwargs.get("flip")
        if flip is not None and not isinstance(flip, bool):
            problems.append(f"{path}.flip: must be true/false, got {flip!r}")
        elif flip is not None and kwargs.get("pipeline") is not None:
            problems.append(f"{path}.flip: not used with {path}.pipeline (a RandomFlip step there flips); "
                            f"remove flip (or set it to null where a _base_ sets it)")
        for name in ("mean", "std"):
            if name in kwargs:
                try:
                    Normalize(**{name: kwargs[name]})
                except ValueError as exc:
                    problems.append(f"{path}.{name}: {str(exc).removeprefix(name + ' ')}")
        problems += pipeline_problems(kwargs.get("pipeline"), f"{path}.pipeline")
        problems += pipeline_problems(kwargs.get("test_pipeline"), f"{path}.test_pipeline", test=True)
        return problems

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random transforms are drawn; call before iterating each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.images)

    def _flip(self, index: int) -> bool:
        return bool(torch.rand((), generator=item_generator(self.seed, self.epoch, index)) < 0.5)

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
        if self.pipeline is not None:
            gen = item_generator(self.seed, self.epoch, index)
            return self.pipeline(torch.from_numpy(raw_image).permute(2, 0, 1), torch.from_numpy(raw_mask), gen)
        image = torch.from_numpy(raw_image).permute(2, 0, 1).float()
        mask = torch.from_numpy(raw_mask).long()
        image = (image - self.mean) / self.std
        if self.augment and self._flip(index):
            image, mask = image.flip(-1), mask.flip(-1)
        return image.contiguous(), mask.contiguous()
