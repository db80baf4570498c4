"""Pictures of the segmentation example's predictions: image | ground truth | prediction | overlay, with a legend."""

from __future__ import annotations

import colorsys
import io
from pathlib import Path

import numpy as np
import torch

# Background black, then distinct colours (MMSeg-like); more classes get evenly spread hues (below).
_PALETTE = [(0, 0, 0), (220, 20, 60), (0, 130, 200), (255, 200, 0), (60, 180, 75), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (128, 128, 0)]
IGNORE_COLOUR = (255, 255, 255)  # ignore_index pixels in the mask panels; left as the image in the overlay


def palette(num_classes: int) -> np.ndarray:
    """`num_classes x 3` uint8 colours. Past the fixed ten, hues step by the golden angle with alternating
    saturation and brightness, so neighbouring class indices never get near-identical colours (random colours do)."""
    colours: list[tuple[int, ...]] = list(_PALETTE[:num_classes])
    k = 0
    while len(colours) < num_classes:
        hue = (0.07 + k * 0.618033988749895) % 1.0
        sat, val = (0.85, 0.95) if k % 3 == 0 else (0.55, 0.85) if k % 3 == 1 else (0.95, 0.6)
        colours.append(tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, sat, val)))
        k += 1
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


def _labels(mask: torch.Tensor, num_colours: int, ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    labels = mask.detach().cpu().long().numpy()
    valid = (labels != ignore_index) & (labels >= 0) & (labels < num_colours)
    return labels, valid


def colour_mask(mask: torch.Tensor, colours: np.ndarray, ignore_index: int = 255) -> np.ndarray:
    """The label map in palette colours (H x W x 3 uint8); ignored (or out-of-range) pixels white."""
    labels, valid = _labels(mask, len(colours), ignore_index)
    out = np.empty((*labels.shape, 3), dtype=np.uint8)
    out[...] = IGNORE_COLOUR
    out[valid] = colours[labels[valid]]
    return out


def blend(rgb: np.ndarray, mask: torch.Tensor, colours: np.ndarray, ignore_index: int = 255,
          alpha: float = 0.8) -> np.ndarray:
    """The label map's colours over the image with opacity `alpha` (MMSeg's visualizer: 0.8); ignored pixels
    keep the image."""
    labels, valid = _labels(mask, len(colours), ignore_index)
    out = rgb.astype(np.float32)
    out[valid] = (1 - alpha) * out[valid] + alpha * colours[labels[valid]].astype(np.float32)
    return out.round().astype(np.uint8)


def draw_sample(image: torch.Tensor, gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                ignore_index: int = 255, alpha: float = 0.8, class_names: list[str] | None = None,
                colours: np.ndarray | None = None) -> np.ndarray:
    """One picture (H x W x 3 uint8): image | ground truth | prediction (palette colours) | prediction over the
    image (`alpha`), titled, with a legend of the classes present in either mask. Small images are enlarged
    (nearest neighbour) so 64-pixel samples stay readable."""
    from PIL import Image, ImageDraw

    colours = palette(num_classes) if colours is None else colours
    names = class_names or [str(i) for i in range(num_classes)]
    rgb = _to_rgb(image)
    panels = [rgb, colour_mask(gt, colours, ignore_index), colour_mask(pred, colours, ignore_index),
              blend(rgb, pred, colours, ignore_index, alpha)]
    scale = max(1, 192 // max(rgb.shape[0], 1))
    h, w = rgb.shape[0] * scale, rgb.shape[1] * scale
    gap, title_h, row_h = 6, 18, 18
    present = sorted({int(v) for m in (gt, pred) for v in torch.unique(m.detach().cpu().long()).tolist()
                      if 0 <= int(v) < num_classes})
    font = _font(12)
    width = 4 * w + 5 * gap
    entries = [(c, names[c] if c < len(names) else str(c)) for c in present]
    if any(bool((m.detach().cpu().long() == ignore_index).any()) for m in (gt, pred)):
        entries.append((-1, "ignored"))
    # Legend: swatch + name, wrapped into rows that fit the picture's width.
    items, x, rows = [], gap, 1
    for c, label in entries:
        item_w = 18 + int(font.getlength(label)) + 14
        if x + item_w > width - gap and x > gap:
            x, rows = gap, rows + 1
        items.append((x, rows - 1, c, label))
        x += item_w
    canvas = Image.new("RGB", (width, title_h + h + gap + rows * row_h + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    titles = ["image", "ground truth", "prediction", f"overlay (alpha {alpha:g})"]
    for i, (panel, title) in enumerate(zip(panels, titles, strict=True)):
        left = gap + i * (w + gap)
        canvas.paste(Image.fromarray(panel).resize((w, h), Image.Resampling.NEAREST), (left, title_h))
        # A frame, so white (ignored) pixels at a panel's edge do not merge into the background.
        draw.rectangle((left - 1, title_h - 1, left + w, title_h + h), outline=(110, 110, 110))
        draw.text((left, 2), title, fill=(0, 0, 0), font=font)
    top = title_h + h + gap
    for x, row, c, label in items:
        y = top + row * row_h
        colour = IGNORE_COLOUR if c < 0 else tuple(int(v) for v in colours[c])
        draw.rectangle((x, y + 2, x + 13, y + 15), fill=colour, outline=(0, 0, 0))
        draw.text((x + 18, y + 2), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _font(size: int):  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def write_png(path: Path, picture: np.ndarray) -> Path:
    """Save an H x W x 3 uint8 array as PNG, to a temporary name then renamed (no half-written pictures)."""
    from PIL import Image

    from engine.checkpoint import atomic_write_bytes

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def write_overlay(path: Path, image: torch.Tensor, gt: torch.Tensor, pred: torch.Tensor, num_classes: int,
                  ignore_index: int = 255, alpha: float = 0.8, class_names: list[str] | None = None) -> Path:
    """`draw_sample` saved as a PNG at `path`."""
    return write_png(path, draw_sample(image, gt, pred, num_classes, ignore_index, alpha, class_names))
