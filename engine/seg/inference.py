"""Whole-image and sliding-window inference for segmenters that give per-pixel logits (MMSeg's `test_cfg.mode`)."""

from __future__ import annotations

from collections.abc import Callable

import torch

Logits = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, h, w) -> (N, C, h, w)


def windows(height: int, width: int, crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The `(y1, y2, x1, x2)` windows MMSeg's `slide_inference` visits, row by row.

    A window starts every `stride` pixels; the last one in each direction is shifted back so it ends at the image's
    edge (no window hangs over it), and a side shorter than the crop gets one window of the side's own length. So
    the windows cover every pixel, all have the same size, and with a crop covering the image the only window is the
    whole image."""
    (crop_h, crop_w), (stride_h, stride_w) = crop, stride
    if min(crop_h, crop_w, stride_h, stride_w) < 1:
        raise ValueError(f"crop {crop} and stride {stride} must be positive")
    rows = max(height - crop_h + stride_h - 1, 0) // stride_h + 1
    cols = max(width - crop_w + stride_w - 1, 0) // stride_w + 1
    out = []
    for row in range(rows):
        y2 = min(row * stride_h + crop_h, height)
        y1 = max(y2 - crop_h, 0)
        for col in range(cols):
            x2 = min(col * stride_w + crop_w, width)
            x1 = max(x2 - crop_w, 0)
            out.append((y1, y2, x1, x2))
    return out


@torch.no_grad()
def slide_logits(logits_of: Logits, image: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int],
                 batch_size: int = 8) -> torch.Tensor:
    """`(C, H, W)` logits of a `(3, H, W)` image: each window's logits summed into place, divided by how many windows
    saw the pixel (MMSeg's `count_mat`). Windows go through the model `batch_size` at a time (they share a size)."""
    height, width = image.shape[-2:]
    boxes = windows(height, width, crop, stride)
    total: torch.Tensor | None = None
    count = torch.zeros((1, height, width), device=image.device)
    for start in range(0, len(boxes), batch_size):
        chunk = boxes[start:start + batch_size]
        crops = torch.stack([image[:, y1:y2, x1:x2] for y1, y2, x1, x2 in chunk])
        out = logits_of(crops).float()
        if total is None:
            total = torch.zeros((out.shape[1], height, width), device=image.device)
        for (y1, y2, x1, x2), window in zip(chunk, out, strict=True):
            total[:, y1:y2, x1:x2] += window
            count[:, y1:y2, x1:x2] += 1
    assert total is not None  # windows() always returns at least one window
    return total / count


@torch.no_grad()
def whole_logits(logits_of: Logits, image: torch.Tensor) -> torch.Tensor:
    """`(C, H, W)` logits of a `(3, H, W)` image in one forward pass."""
    return logits_of(image.unsqueeze(0))[0].float()
