"""Generated digits-like data: each class is a fixed random 8x8 glyph; items are noisy, shifted copies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = {"train": 0, "val": 1, "test": 2}


def make_digits(root: str, seed: int, num_classes: int = 10, per_class: int = 40) -> dict:
    """Write root/<split>.npz (images uint8 N x 8 x 8, labels) for train/val/test."""
    glyphs = np.random.default_rng(seed).random((num_classes, 8, 8)) > 0.5
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    for split, index in SPLITS.items():
        rng = np.random.default_rng([seed, index])
        n = per_class if split == "train" else per_class // 2
        labels = np.repeat(np.arange(num_classes), n)
        images = glyphs[labels].astype(np.float32) + rng.normal(0, 0.3, (len(labels), 8, 8))
        shifts = rng.integers(-1, 2, len(labels))  # each item shifted on its own, so every split sees all shifts
        images = np.stack([np.roll(image, shift, axis=1) for image, shift in zip(images, shifts, strict=True)])
        np.savez(out / f"{split}.npz", images=(np.clip(images, 0, 1) * 255).astype(np.uint8), labels=labels)
    return {"counts": {s: int(len(np.load(out / f"{s}.npz")["labels"])) for s in SPLITS}}


class Digits(Dataset):
    """Items are (image 1 x 8 x 8 float in [0, 1], label). Offered `num_classes`, it refuses data with more."""

    def __init__(self, root: str, split: str, num_classes: int | None = None) -> None:
        data = np.load(Path(root) / f"{split}.npz")
        self.images = torch.from_numpy(data["images"]).float().div(255).unsqueeze(1)
        self.labels = torch.from_numpy(data["labels"]).long()
        if num_classes is not None and int(self.labels.max()) >= num_classes:
            raise ValueError(f"the {split} data has labels up to {int(self.labels.max())}, but num_classes is "
                             f"{num_classes}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]
