"""Small generated dataset folders in the layouts SegFolder reads (PNG/JPEG written with Pillow, never downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# Varied sizes (width, height), as real datasets have.
SIZES = [(12, 10), (16, 12), (10, 14), (14, 14), (12, 16), (18, 10)]


def image(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def labels(rng: np.random.Generator, w: int, h: int, high: int, extra: int | None = None) -> np.ndarray:
    out = rng.integers(0, high, size=(h, w), dtype=np.uint8)
    if extra is not None:
        out[0, :3] = extra
    return out


def save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def generic(root: Path, *, names: list[str], subdir: str = "", seed: int = 0, num_classes: int = 3,
            img_suffix: str = ".png", seg_map_suffix: str = ".png") -> dict[str, np.ndarray]:
    """``root/img_dir[/subdir]/<name><img_suffix>`` and ``root/ann_dir[/subdir]/<name><seg_map_suffix>`` (index
    masks, values below ``num_classes``); returns each name's mask."""
    rng = np.random.default_rng(seed)
    masks = {}
    for i, name in enumerate(names):
        w, h = SIZES[i % len(SIZES)]
        save(root / "img_dir" / subdir / f"{name}{img_suffix}", image(rng, w, h))
        masks[name] = save_mask = labels(rng, w, h, num_classes)
        save(root / "ann_dir" / subdir / f"{name}{seg_map_suffix}", save_mask)
    return masks


def ade20k(root: Path, *, train: int = 3, val: int = 2) -> dict[str, np.ndarray]:
    """ADEChallengeData2016-like: ``images/{training,validation}/*.jpg``, ``annotations/.../*.png`` with raw labels
    0..150 (0 = other); returns the raw masks by split/name."""
    rng = np.random.default_rng(1)
    out = {}
    for sub, n in (("training", train), ("validation", val)):
        for i in range(n):
            name = f"ADE_{sub[:5]}_{i:08d}"
            w, h = SIZES[i % len(SIZES)]
            save(root / "images" / sub / f"{name}.jpg", image(rng, w, h))
            mask = labels(rng, w, h, 5)
            mask[0, 0], mask[0, 1] = 0, 150  # "other" and the last class
            out[f"{sub}/{name}"] = mask
            save(root / "annotations" / sub / f"{name}.png", mask)
    return out


def cityscapes(root: Path) -> dict[str, np.ndarray]:
    """``leftImg8bit/{train,val}/<city>/<id>_leftImg8bit.png`` + ``gtFine/.../<id>_gtFine_labelTrainIds.png``
    (train ids 0..18, 255 = ignore); returns the masks by split/city/id."""
    rng = np.random.default_rng(2)
    out = {}
    for split, cities in (("train", ["aachen", "bochum"]), ("val", ["frankfurt"])):
        for j, city in enumerate(cities):
            stem = f"{city}_{j:06d}_000019"
            w, h = SIZES[j]
            save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image(rng, w, h))
            mask = labels(rng, w, h, 19, extra=255)
            out[f"{split}/{city}/{stem}"] = mask
            save(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", mask)
            # Cityscapes ships other annotation files next to the train ids: they must be left alone.
            save(root / "gtFine" / split / city / f"{stem}_gtFine_color.png", image(rng, w, h))
    return out
