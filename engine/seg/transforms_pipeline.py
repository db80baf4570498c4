"""A params.yaml pipeline (`[{type: RandomResize, ...}, ...]`) checked and built into one callable, and the
per-item generator every random decision of it draws from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from engine.construct import REFUSALS, kwargs_problems, refusal
from engine.errors import ConfigError
from engine.seg.transforms import Label, Normalize, Pad, RandomCrop, RandomFlip, RandomResize, Resize
from engine.seg.transforms_color import PhotoMetricDistortion
from engine.suggest import did_you_mean

TRANSFORMS: dict[str, type] = {t.__name__: t for t in (
    RandomResize, Resize, RandomCrop, RandomFlip, PhotoMetricDistortion, Normalize, Pad)}
# The test pipeline changes the image only and must leave predictions comparable with the stored label: a crop, a
# flip or padding would make the model's output cover other pixels than the label it is scored against.
TEST_TRANSFORMS = ("Resize", "Normalize")

# Mixes (seed, epoch, index) into one generator seed, so an item's draws depend on nothing else (workers, order).
_EPOCH_STRIDE = 1_000_003


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of item ``index`` in ``epoch`` of a run seeded ``seed``."""
    key = (seed * _EPOCH_STRIDE**2 + epoch * _EPOCH_STRIDE + index) % 2**63
    return torch.Generator().manual_seed(key)


def pipeline_problems(steps: Any, path: str, *, test: bool = False) -> list[str]:
    """Every problem of the pipeline `steps` at `path` (unknown types, arguments the transform does not take or
    refuses), one line each naming `path.<i>.<key>`."""
    if steps is None:
        return []
    if not isinstance(steps, list):
        return [f"{path}: must be a list of transforms like [{{type: RandomFlip, prob: 0.5}}], got {steps!r}"]
    problems: list[str] = []
    normalized_at = None
    for i, step in enumerate(steps):
        where = f"{path}.{i}"
        if not isinstance(step, dict) or not isinstance(step.get("type"), str):
            problems.append(f"{where}: must be a mapping with a `type` key (one of {', '.join(TRANSFORMS)}), "
                            f"got {step!r}")
            continue
        name = step["type"]
        allowed = TEST_TRANSFORMS if test else tuple(TRANSFORMS)
        if name not in allowed:
            if test and name in TRANSFORMS:
                problems.append(f"{where}.type: {name} is a training transform; the test pipeline changes the "
                                f"image only ({', '.join(TEST_TRANSFORMS)}), so predictions cover the stored label")
            else:
                problems.append(f"{where}.type: no transform {name!r}{did_you_mean(name, allowed)}; the transforms "
                                f"are {', '.join(allowed)}")
            continue
        if normalized_at is not None and name != "Pad":
            # Resizing rounds to whole pixel values and the distortion clips to 0..255: both need raw pixels.
            problems.append(f"{where}.type: {name} after Normalize ({path}.{normalized_at}); the transforms work on "
                            f"pixel values 0..255, so only Pad may follow Normalize: move {name} before it")
        normalized_at = i if name == "Normalize" and normalized_at is None else normalized_at
        cls = TRANSFORMS[name]
        kwargs = {k: v for k, v in step.items() if k != "type"}
        found = kwargs_problems(cls, kwargs, where)
        if not found:
            try:
                cls(**kwargs)
            except REFUSALS as exc:
                found.append(refusal(cls, kwargs, where, exc))
        problems += found
    return problems


class Pipeline:
    """The transforms of one split applied in order to ``(image, label)``; a uint8 ``H x W x 3`` array or tensor
    (or a ``3 x H x W`` one) comes in, a float32 ``3 x H x W`` image and an int64 label map go out.

    Normalisation is always part of it: a pipeline without a Normalize step gets the dataset's (``mean``, ``std``)
    before its first Pad, or at its end, as MMSeg's data preprocessor normalises after the transforms and pads the
    normalised image. In the test pipeline the transforms see the image only; the label is returned as stored."""

    def __init__(self, steps: list[dict[str, Any]], path: str, *, test: bool = False,
                 mean: Any = None, std: Any = None) -> None:
        problems = pipeline_problems(steps, path, test=test)
        if problems:
            raise ConfigError(problems)
        self.test = test
        self.transforms: list[Any] = [TRANSFORMS[s["type"]](**{k: v for k, v in s.items() if k != "type"})
                                      for s in steps]
        if not any(isinstance(t, Normalize) for t in self.transforms):
            at = next((i for i, t in enumerate(self.transforms) if isinstance(t, Pad)), len(self.transforms))
            normalize = Normalize(*(() if mean is None else (mean, std)))
            self.transforms.insert(at, normalize)

    def __call__(self, image: Any, label: Any, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        out_image = as_chw(image)
        stored = torch.as_tensor(np.asarray(label) if not isinstance(label, torch.Tensor) else label).long()
        out_label: Label = None if self.test else stored
        for transform in self.transforms:
            out_image, out_label = transform(out_image, out_label, gen)
        final = stored if out_label is None else out_label
        return out_image.float().contiguous(), final.contiguous()


def as_chw(image: Any) -> torch.Tensor:
    """A float32 ``3 x H x W`` tensor from a ``H x W x 3`` (as stored) or ``3 x H x W`` image."""
    tensor = torch.as_tensor(np.asarray(image) if not isinstance(image, torch.Tensor) else image)
    if tensor.ndim != 3 or 3 not in (tensor.shape[0], tensor.shape[-1]):
        raise ValueError(f"an image must be H x W x 3 or 3 x H x W, got shape {tuple(tensor.shape)}")
    if tensor.shape[-1] == 3 and tensor.shape[0] != 3:
        tensor = tensor.permute(2, 0, 1)
    return tensor.float()
