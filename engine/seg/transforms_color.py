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
    value = torch.maximum(torch.maximum(r, g), b)  # elementwise: far faster than a max over the channel dim
    diff = value - torch.minimum(torch.minimum(r, g), b)
    scale = 60 / diff.clamp(min=1e-6)
    # The sector of the first maximal channel (red before green before blue, as OpenCV decides).
    hue = torch.where(value == r, (g - b) * scale,
                      torch.where(value == g, (b - r) * scale + 120, (r - g) * scale + 240))
    hue = torch.where(hue < 0, hue + 360, hue).div_(2).round_()
    hue = torch.where((hue >= 180) | (diff == 0), 0.0, hue)
    saturation = diff.mul(255).div_(value.clamp(min=1e-6)).round_()
    return torch.stack([hue, saturation, value.round()])


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_hsv`: OpenCV's 8-bit HSV -> RGB 0..255, rounded. Channel n of (R, G, B) is
    ``V - V S clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + H / 60) mod 6`` for n = 5, 3, 1: the six-sector
    formula in one expression per channel."""
    sixths = hsv[0] / 30  # H is stored as degrees / 2
    k = torch.tensor([5.0, 3.0, 1.0]).view(3, 1, 1) + sixths
    k = torch.where(k >= 6, k - 6, k)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    v = hsv[2]
    return (v - ramp.mul_(v * hsv[1] / 255)).round_().clamp_(0, 255)


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
