"""Deterministic generator of the bundled synthetic segmentation dataset (shapes on textured backgrounds)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from engine.seg.prepared import replace_dir

FORMAT_VERSION = 1
DEFAULT_CLASSES = ["background", "circle", "square", "triangle"]
SUPPORTED_SHAPES = ("circle", "square", "triangle", "ring", "cross")
SPLITS = ("train", "val", "test")
# Fixed, visually distinct colours for visualising masks; index i is class i.
_PALETTE = [
    [0, 0, 0],
    [220, 20, 60],
    [0, 130, 255],
    [255, 200, 0],
    [60, 180, 75],
    [145, 30, 180],
    [245, 130, 48],
    [70, 240, 240],
]
# Minimum RGB distance between an object's colour and the background under it, so every object stays visible
# and the labels remain learnable (a random colour can otherwise coincide with the background).
_MIN_CONTRAST = 70.0
_COLOR_TRIES = 16
_PLACEMENT_TRIES = 20


def _background(rng: np.random.Generator, size: int, noise: float) -> np.ndarray:
    """Smooth two-colour gradient at a random angle plus random stripes and pixel noise (float32, H×W×3)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    c0, c1 = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xs + np.sin(angle) * ys
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    # Stripes give the background local structure, so "not uniform" does not mean "object".
    freq = rng.uniform(2.0, 8.0)
    s_angle = rng.uniform(0, np.pi)
    phase = rng.uniform(0, 2 * np.pi)
    amp = rng.uniform(0.0, 30.0)
    stripes = np.sin(2 * np.pi * freq * (np.cos(s_angle) * xs + np.sin(s_angle) * ys) + phase)
    img += (amp * stripes)[..., None] * rng.uniform(0.5, 1.0, size=3).astype(np.float32)
    img += rng.normal(0.0, noise, size=img.shape).astype(np.float32)
    return img


def _shape_mask(shape: str, xs: np.ndarray, ys: np.ndarray, cx: float, cy: float, r: float, angle: float):
    """Boolean mask of one shape of circumradius-ish ``r`` centred at (cx, cy), rotated by ``angle``."""
    dx, dy = xs - cx, ys - cy
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        half = 0.8 * r  # similar area to the circle, so size is no cue
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "cross":
        arm, half = 0.35 * r, r
        return ((np.abs(u) <= half) & (np.abs(v) <= arm)) | ((np.abs(v) <= half) & (np.abs(u) <= arm))
    if shape == "triangle":
        # Equilateral triangle as three half-planes; inradius 0.7 r gives roughly the square's area.
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = angle + k * 2 * np.pi / 3
            inside &= np.cos(a) * dx + np.sin(a) * dy <= 0.7 * r
        return inside
    raise ValueError(f"unknown shape {shape!r}; supported: {SUPPORTED_SHAPES}")


def _pick_color(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour far enough from the mean background colour ``under`` the object."""
    color = rng.uniform(0, 255, size=3)
    for _ in range(_COLOR_TRIES):
        if np.linalg.norm(color - under) >= _MIN_CONTRAST:
            break
        color = rng.uniform(0, 255, size=3)
    return color.astype(np.float32)


def _render(
    rng: np.random.Generator, size: int, shapes: list[str], min_objects: int, max_objects: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 H×W×3) and its mask (uint8 H×W); later objects paint over earlier ones."""
    img = _background(rng, size, noise)
    mask = np.zeros((size, size), dtype=np.uint8)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(min_objects, max_objects + 1))):
        cls = int(rng.integers(1, len(shapes)))
        r = rng.uniform(0.11, 0.2) * size
        angle = rng.uniform(0, 2 * np.pi)
        # Partial overlaps only: a shape buried under another would leave an unidentifiable fragment.
        for _ in range(_PLACEMENT_TRIES):
            cx, cy = rng.uniform(r * 0.6, size - r * 0.6, size=2)
            if all(np.hypot(cx - px, cy - py) >= 0.8 * (r + pr) for px, py, pr in placed):
                break
        placed.append((cx, cy, r))
        obj = _shape_mask(shapes[cls], xs, ys, cx, cy, r, angle)
        if not obj.any():
            continue
        color = _pick_color(rng, img[obj].mean(axis=0))
        # A mild linear shading inside the object keeps it from being a perfectly flat patch.
        shade = 1.0 + 0.15 * ((xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)) / r
        obj_px = color * shade[obj][:, None] + rng.normal(0.0, noise, size=(int(obj.sum()), 3))
        img[obj] = obj_px
        mask[obj] = cls
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def _generate_split(
    rng: np.random.Generator, n: int, size: int, shapes: list[str], min_objects: int, max_objects: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for i in range(n):
        images[i], masks[i] = _render(rng, size, shapes, min_objects, max_objects, noise)
    return images, masks


def _validate(classes: list[str], image_size: int, counts: dict[str, int], min_objects: int, max_objects: int) -> None:
    if len(classes) < 2 or classes[0] != "background":
        raise ValueError(f"classes must start with 'background' and name at least one shape, got {classes}")
    unknown = [c for c in classes[1:] if c not in SUPPORTED_SHAPES]
    if unknown:
        raise ValueError(f"unsupported shape classes {unknown}; supported: {SUPPORTED_SHAPES}")
    if len(classes) > len(_PALETTE):
        raise ValueError(f"at most {len(_PALETTE)} classes are supported")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16, got {image_size}")
    if any(n < 0 for n in counts.values()):
        raise ValueError(f"split sizes must be non-negative, got {counts}")
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")


def generate_dataset(
    root: str | Path,
    *,
    seed: int,
    image_size: int = 64,
    num_train: int,
    num_val: int,
    num_test: int,
    classes: list[str] | None = None,
    min_objects: int = 1,
    max_objects: int = 4,
    noise: float = 8.0,
) -> dict:
    """Write ``root/{train,val,test}/{images,masks}.npy`` and ``root/meta.json``; return the meta dict.

    Images are uint8 ``(N, H, W, 3)``, masks uint8 ``(N, H, W)`` holding class indices. The same arguments always
    give byte-identical files: each split draws from its own ``PCG64`` stream derived from ``seed`` and the split,
    never from a global RNG. Everything is written into a temp dir next to ``out_dir`` and renamed into place, so an
    interrupted run leaves no half-written dataset behind.
    """
    out_dir = Path(root)
    classes = list(classes) if classes is not None else list(DEFAULT_CLASSES)
    counts = {"train": num_train, "val": num_val, "test": num_test}
    _validate(classes, image_size, counts, min_objects, max_objects)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        pixel_counts = {}
        for split_idx, split in enumerate(SPLITS):
            # Independent per-split streams: changing num_train does not change the val/test images.
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, split_idx])))
            images, masks = _generate_split(rng, counts[split], image_size, classes, min_objects, max_objects, noise)
            (tmp / split).mkdir()
            np.save(tmp / split / "images.npy", images)
            np.save(tmp / split / "masks.npy", masks)
            pixel_counts[split] = np.bincount(masks.ravel(), minlength=len(classes)).tolist()
        meta = {
            "format_version": FORMAT_VERSION,
            "seed": seed,
            "image_size": image_size,
            "classes": classes,
            "palette": [list(c) for c in _PALETTE[: len(classes)]],
            "counts": counts,
            "pixel_counts": pixel_counts,
            "min_objects": min_objects,
            "max_objects": max_objects,
            "noise": noise,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta
