"""Pictures of the segmentation example's predictions: image | ground truth | prediction, masks blended in colour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

# Background black, then distinct colours (MMSeg-like); more classes get seeded random colours.
_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 130, 200), (255, 200, 0), (60, 180, 75), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (128, 128, 0)]


def palette(num_classes: int) -> np.ndarray:
    colours: list[tuple[int, ...]] = list(_PALETTE[:num_classes])
    rng = np.random.default_rng(0)
    while len(colours) < num_classes:
        colours.append(tuple(int(c) for c in rng.integers(0, 256, 3)))
    return np.array(colours, dtype=np.uint8)


def _to_rgb(image: torch.Tensor) -> np.ndarray:
    """A C x H x W (normalised) image as H x W x 3 uint8, stretched to its own min..max (the evaluator does not
    know the dataset's normalisation)."""
    array = image.detach().float().cpu()
    if array.dim() == 2:
        array = array.unsqueeze(0)
    array = array[:3] if array.shape[0] >= 3 else array[:1].expand(3, -1, -1)
    low, high = float(array.min()), float(array.max())
    array = (array - low) / (high - low) if high > low else torch.zeros_like(array)
    return (array.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _blend(rgb: np.ndarray, mask: torch.Tensor, colours: np.ndarray, ignore_index: int) -> np.ndarray:
    labels = mask.detach().cpu().long().numpy()
    valid = (labels != ignore_index) & (labels >= 0) & (labels < len(colours))
    out = rgb.astype(np.float32)
    coloured = colours[np.where(valid, labels, 0)].astype(np.float32)
    out[valid] = 0.45 * out[valid] + 0.55 * coloured[valid]
    return out.round().astype(np.uint8)


def write_overlay(path: Path, image: torch.Tensor, gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                  ignore_index: int = 255) -> Path:
    """One PNG: the image, the ground truth over it, the prediction over it; small images are enlarged (nearest)."""
    from PIL import Image

    rgb = _to_rgb(image)
    colours = palette(num_classes)
    gap = np.full((rgb.shape[0], 2, 3), 255, dtype=np.uint8)
    panel = np.concatenate([rgb, gap, _blend(rgb, gt, colours, ignore_index), gap,
                            _blend(rgb, pred, colours, ignore_index)], axis=1)
    scale = max(1, 128 // max(rgb.shape[0], 1))
    picture = Image.fromarray(panel).resize((panel.shape[1] * scale, panel.shape[0] * scale), Image.Resampling.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path
