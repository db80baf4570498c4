"""MMSeg's PhotoMetricDistortion in pure torch, with OpenCV's 8-bit RGB <-> HSV conversion (H in 0..179)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from engine.seg.transforms import Label, randint, uniform


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """``3 x H x W`` RGB with values 0..255 -> HSV as OpenCV stores it for uint8 images: H = degrees / 2 (0..179),
    S and V 0..255, each rounded to a whole value."""
    r, g, b = image.unbind(0)
    value, _ = image.max(0)
    low, _ = image.min(0)
    diff = value - low
    saturation = torch.where(value > 0, diff * 255 / value.clamp(min=1e-6), torch.zeros_like(value))
    safe = diff.clamp(min=1e-6)
    hue = torch.where(value == r, 60 * (g - b) / safe,
                      torch.where(value == g, 120 + 60 * (b - r) / safe, 240 + 60 * (r - g) / safe))
    hue = torch.where(diff > 0, hue, torch.zeros_like(hue))
    hue = torch.where(hue < 0, hue + 360, hue)
    return torch.stack([(hue / 2).round() % 180, saturation.round(), value.round()])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hsv`: OpenCV's 8-bit HSV -> RGB 0..255, rounded."""
    h, s, v = hsv[0] * 2 / 60, hsv[1] / 255, hsv[2]
    sector = h.floor()
    f = h - sector
    sector = sector.long() % 6
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    # (r, g, b) per 60-degree sector of the hue circle.
    table = torch.stack([torch.stack(c) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    rgb = table.gather(0, sector.expand(3, *sector.shape)[None]).squeeze(0)
    return rgb.round().clamp(0, 255)


def _convert(values: torch.Tensor, alpha: float = 1.0, beta: float = 0.0) -> torch.Tensor:
    """MMSeg's ``convert``: ``values * alpha + beta`` clipped to 0..255 and cast to uint8 (which truncates)."""
    return (values * alpha + beta).clamp(0, 255).floor()


def _range(value: Any, name: str) -> tuple[float, float]:
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            or not 0 <= value[0] <= value[1]):
        raise ValueError(f"{name} must be [low, high] with 0 <= low <= high, got {value!r}")
    return float(value[0]), float(value[1])


class PhotoMetricDistortion:
    """MMSeg's order, each step applied on a fair coin flip: brightness (add a value in ±``brightness_delta``),
    then contrast first or last (another coin; multiply by a value in ``contrast_range``), saturation (scale S in
    ``saturation_range``), hue (shift H by an integer in [-``hue_delta``, ``hue_delta``) on OpenCV's 0..179 scale).
    Values stay whole numbers in 0..255 after every step, as MMSeg's uint8 arithmetic keeps them. Goes before
    Normalize."""

    def __init__(self, brightness_delta: int = 32, contrast_range: Any = (0.5, 1.5),
                 saturation_range: Any = (0.5, 1.5), hue_delta: int = 18) -> None:
        for name, value in (("brightness_delta", brightness_delta), ("hue_delta", hue_delta)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        self.brightness_delta = brightness_delta
        self.contrast = _range(contrast_range, "contrast_range")
        self.saturation = _range(saturation_range, "saturation_range")
        self.hue_delta = hue_delta

    def _coin(self, gen: torch.Generator) -> bool:
        return randint(gen, 0, 2) == 1

    def _contrast(self, image: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return _convert(image, alpha=uniform(gen, *self.contrast)) if self._coin(gen) else image

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        image = image.round().clamp(0, 255)  # the uint8 image MMSeg distorts
        if self._coin(gen):
            image = _convert(image, beta=uniform(gen, -self.brightness_delta, self.brightness_delta))
        contrast_first = randint(gen, 0, 2) == 1
        if contrast_first:
            image = self._contrast(image, gen)
        if self._coin(gen):
            hsv = rgb_to_hsv(image)
            hsv[1] = _convert(hsv[1], alpha=uniform(gen, *self.saturation))
            image = hsv_to_rgb(hsv)
        if self._coin(gen):
            hsv = rgb_to_hsv(image)
            hsv[0] = (hsv[0] + randint(gen, -self.hue_delta, self.hue_delta)) % 180 if self.hue_delta else hsv[0]
            image = hsv_to_rgb(hsv)
        if not contrast_first:
            image = self._contrast(image, gen)
        return image, label
