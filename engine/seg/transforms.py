"""MMSeg's geometric and tensor transforms in pure torch: RandomResize, Resize, RandomCrop, RandomFlip, Normalize, Pad.

Each transform takes ``(image, label, gen)``: a float32 ``3 x H x W`` image (pixel values 0..255 until Normalize),
an int64 ``H x W`` label map (or None) and the item's ``torch.Generator``, which every random decision draws from,
and returns the new ``(image, label)``. Sizes follow MMCV's conventions: ``scale`` is ``(width, height)`` (as
MMSeg's ``Resize``/``RandomResize``), ``crop_size`` and Pad's ``size`` are ``(height, width)`` (as MMSeg's
``RandomCrop`` and its data preprocessor's ``size``). Images are resized bilinearly (rounded back to whole pixel
values, as OpenCV does for uint8 images), labels by nearest neighbour (OpenCV's and torch's ``nearest`` agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

Label = torch.Tensor | None


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    """A float in [low, high) (numpy's ``random_sample() * (high - low) + low``)."""
    return low + (high - low) * float(torch.rand((), generator=gen, dtype=torch.float64))


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high) (numpy's ``randint``: the upper bound is excluded)."""
    return int(torch.randint(low, high, (), generator=gen))


def pair(value: Any, name: str, *, allow_int: bool = True) -> tuple[int, int]:
    """Two positive integers from ``[a, b]`` (or one integer for both); a ValueError naming ``name`` otherwise."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        one = "a positive integer or " if allow_int else ""
        raise ValueError(f"{name} must be {one}two positive integers [a, b], got {value!r}")
    return int(value[0]), int(value[1])


def rescale_size(width: int, height: int, scale: tuple[int, int], keep_ratio: bool) -> tuple[int, int]:
    """The (width, height) MMCV's Resize gives an image of ``width x height`` for ``scale = (w, h)``. With
    ``keep_ratio`` the aspect ratio is kept and the image is as large as fits: long edge <= max(scale), short edge
    <= min(scale) (``mmcv.rescale_size``, rounding half up)."""
    if not keep_ratio:
        return scale
    factor = min(max(scale) / max(height, width), min(scale) / min(height, width))
    return int(width * factor + 0.5), int(height * factor + 0.5)


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to (height, width), rounded and clipped to 0..255 as an OpenCV uint8 resize would be."""
    if tuple(image.shape[-2:]) == size:
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    return out.round().clamp_(0, 255)


def resize_label(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize to (height, width): labels are never blended."""
    if tuple(label.shape) == size:
        return label
    return F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()


class Resize:
    """Resize to ``scale`` (width, height); with ``keep_ratio`` (default) to the largest size that fits it. In the
    test pipeline only the image is resized (the label stays at its original size, where MMSeg scores); in the train
    pipeline the label is resized with it."""

    def __init__(self, scale: Any, keep_ratio: bool = True) -> None:
        self.scale = pair(scale, "scale")
        self.keep_ratio = bool(keep_ratio)

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        return resize_to(image, label, self.scale, self.keep_ratio)


def resize_to(image: torch.Tensor, label: Label, scale: tuple[int, int],
              keep_ratio: bool) -> tuple[torch.Tensor, Label]:
    """``image`` and ``label`` (when there is one) resized for ``scale``."""
    width, height = rescale_size(image.shape[-1], image.shape[-2], scale, keep_ratio)
    image = resize_image(image, (height, width))
    return image, None if label is None else resize_label(label, (height, width))


class RandomResize:
    """MMCV's RandomResize: with ``ratio_range`` the target scale is ``scale`` times a ratio drawn uniformly from
    it; without, ``scale`` is two (width, height) pairs and each edge is drawn between them (inclusive). The image
    and label are then resized to that scale (``keep_ratio`` as in :class:`Resize`)."""

    def __init__(self, scale: Any, ratio_range: Any = None, keep_ratio: bool = True) -> None:
        if ratio_range is None:
            if (not isinstance(scale, Sequence) or isinstance(scale, str) or len(scale) != 2
                    or not all(isinstance(s, Sequence) and not isinstance(s, str) for s in scale)):
                raise ValueError(f"scale must be two [width, height] pairs to draw between when ratio_range is "
                                 f"null (or set ratio_range: [0.5, 2.0]), got {scale!r}")
            self.scales: list[tuple[int, int]] = [pair(s, "scale", allow_int=False) for s in scale]
            self.ratio_range: tuple[float, float] | None = None
        else:
            self.scales = [pair(scale, "scale", allow_int=False)]
            if (not isinstance(ratio_range, Sequence) or isinstance(ratio_range, str) or len(ratio_range) != 2
                    or not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in ratio_range)
                    or not 0 < ratio_range[0] <= ratio_range[1]):
                raise ValueError(f"ratio_range must be [low, high] with 0 < low <= high, got {ratio_range!r}")
            self.ratio_range = (float(ratio_range[0]), float(ratio_range[1]))
        self.keep_ratio = bool(keep_ratio)

    def sample_scale(self, gen: torch.Generator) -> tuple[int, int]:
        """The (width, height) scale of one item (MMCV's ``_random_sample_ratio`` / ``_random_sample``)."""
        if self.ratio_range is not None:
            ratio = uniform(gen, *self.ratio_range)
            width, height = self.scales[0]
            return int(width * ratio), int(height * ratio)
        (w0, h0), (w1, h1) = self.scales
        return randint(gen, min(w0, w1), max(w0, w1) + 1), randint(gen, min(h0, h1), max(h0, h1) + 1)

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        scale = self.sample_scale(gen)
        return resize_to(image, label, (max(scale[0], 1), max(scale[1], 1)), self.keep_ratio)


class RandomCrop:
    """MMSeg's RandomCrop: a ``crop_size`` (height, width) window at a uniformly drawn offset (an image smaller
    than the crop keeps that edge whole). With ``cat_max_ratio < 1`` a crop whose most frequent class covers that
    share of its labelled pixels (``ignore_index`` excluded), or that holds one class only, is redrawn, up to 10
    times; the last window drawn is kept."""

    def __init__(self, crop_size: Any, cat_max_ratio: float = 1.0, ignore_index: int = 255) -> None:
        self.crop_size = pair(crop_size, "crop_size")
        if isinstance(cat_max_ratio, bool) or not isinstance(cat_max_ratio, (int, float)) \
                or not 0 < cat_max_ratio <= 1:
            raise ValueError(f"cat_max_ratio must be a number in (0, 1], got {cat_max_ratio!r}")
        self.cat_max_ratio = float(cat_max_ratio)
        self.ignore_index = int(ignore_index)

    def _window(self, height: int, width: int, gen: torch.Generator) -> tuple[int, int, int, int]:
        offset_h = randint(gen, 0, max(height - self.crop_size[0], 0) + 1)
        offset_w = randint(gen, 0, max(width - self.crop_size[1], 0) + 1)
        return offset_h, offset_h + self.crop_size[0], offset_w, offset_w + self.crop_size[1]

    def _dominated(self, crop: torch.Tensor) -> bool:
        counts = torch.bincount(crop[crop != self.ignore_index].flatten())
        counts = counts[counts > 0]
        return not (len(counts) > 1 and int(counts.max()) / int(counts.sum()) < self.cat_max_ratio)

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        height, width = image.shape[-2:]
        y1, y2, x1, x2 = self._window(height, width, gen)
        if self.cat_max_ratio < 1.0 and label is not None:
            for _ in range(10):  # MMSeg's retries
                if not self._dominated(label[y1:y2, x1:x2]):
                    break
                y1, y2, x1, x2 = self._window(height, width, gen)
        return image[:, y1:y2, x1:x2], None if label is None else label[y1:y2, x1:x2]


class RandomFlip:
    """Flip with probability ``prob``: ``horizontal`` (MMSeg's default direction, left-right) or ``vertical``."""

    def __init__(self, prob: float = 0.5, direction: str = "horizontal") -> None:
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise ValueError(f"prob must be a number in [0, 1], got {prob!r}")
        if direction not in ("horizontal", "vertical"):
            raise ValueError(f"direction must be horizontal or vertical, got {direction!r}")
        self.prob = float(prob)
        self.dim = -1 if direction == "horizontal" else -2

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        if not bool(torch.rand((), generator=gen) < self.prob):
            return image, label
        return image.flip(self.dim), None if label is None else label.flip(self.dim)


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class Normalize:
    """``(image - mean) / std`` per channel (RGB order; ImageNet's statistics by default, as the dataset's)."""

    def __init__(self, mean: Any = IMAGENET_MEAN, std: Any = IMAGENET_STD) -> None:
        for name, value in (("mean", mean), ("std", std)):
            if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 3
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise ValueError(f"{name} must be three numbers (R, G, B), got {value!r}")
        if not all(s > 0 for s in std):
            raise ValueError(f"std must be three positive numbers, got {std!r}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        return (image - self.mean) / self.std, label


class Pad:
    """Pad bottom and right, to ``size`` (height, width) or up to multiples of ``size_divisor`` (one of the two),
    with ``pad_val`` for the image and ``seg_pad_val`` (255, ignored by the loss) for the label. An image already
    larger than ``size`` is left as it is (as MMSeg's batch padding does)."""

    def __init__(self, size: Any = None, size_divisor: int | None = None, pad_val: float = 0,
                 seg_pad_val: int = 255) -> None:
        if (size is None) == (size_divisor is None):
            raise ValueError(f"give exactly one of size and size_divisor, got size={size!r}, "
                             f"size_divisor={size_divisor!r}")
        self.size = None if size is None else pair(size, "size")
        if size_divisor is not None and (isinstance(size_divisor, bool) or not isinstance(size_divisor, int)
                                         or size_divisor < 1):
            raise ValueError(f"size_divisor must be a positive integer, got {size_divisor!r}")
        if isinstance(pad_val, bool) or not isinstance(pad_val, (int, float)):
            raise ValueError(f"pad_val must be a number, got {pad_val!r}")
        if isinstance(seg_pad_val, bool) or not isinstance(seg_pad_val, int) or not 0 <= seg_pad_val <= 255:
            raise ValueError(f"seg_pad_val must be an integer label 0..255, got {seg_pad_val!r}")
        self.size_divisor = size_divisor
        self.pad_val = float(pad_val)
        self.seg_pad_val = seg_pad_val

    def target(self, height: int, width: int) -> tuple[int, int]:
        """The padded (height, width) of a ``height x width`` image."""
        if self.size is not None:
            return max(height, self.size[0]), max(width, self.size[1])
        d = int(self.size_divisor or 1)
        return -(-height // d) * d, -(-width // d) * d

    def __call__(self, image: torch.Tensor, label: Label, gen: torch.Generator) -> tuple[torch.Tensor, Label]:
        height, width = image.shape[-2:]
        out_h, out_w = self.target(height, width)
        if (out_h, out_w) == (height, width):
            return image, label
        padding = (0, out_w - width, 0, out_h - height)
        image = F.pad(image, padding, value=self.pad_val)
        return image, None if label is None else F.pad(label, padding, value=self.seg_pad_val)
