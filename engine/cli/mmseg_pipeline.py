"""Map MMSeg's `train_pipeline` / `test_pipeline` lists to `data.dataset.pipeline` / `test_pipeline` steps, listing
each step or argument that does not map with the reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.cli.mmseg_models import short_type

# The arguments of the transforms in engine/seg/transforms*.py (kept as names so import-mmseg imports no torch; a
# test holds them equal to the signatures).
TRANSFORM_ARGS: dict[str, tuple[str, ...]] = {
    "RandomResize": ("scale", "ratio_range", "keep_ratio"),
    "Resize": ("scale", "keep_ratio"),
    "RandomCrop": ("crop_size", "cat_max_ratio", "ignore_index"),
    "RandomFlip": ("prob", "direction"),
    "PhotoMetricDistortion": ("brightness_delta", "contrast_range", "saturation_range", "hue_delta"),
    "Normalize": ("mean", "std"),
    "Pad": ("size", "size_divisor", "pad_val", "seg_pad_val"),
}
TEST_TRANSFORMS = ("Resize", "Normalize")
# Steps the dataset does itself: it reads the prepared image and label of every item and returns tensors.
_IMPLICIT = {
    "LoadImageFromFile": "the dataset reads each image from the prepared arrays",
    "LoadAnnotations": "the dataset reads each label map from the prepared arrays",
    "PackSegInputs": "items are (image, label) tensors already",
    "ImageToTensor": "items are (image, label) tensors already",
    "DefaultFormatBundle": "items are (image, label) tensors already",
    "Collect": "items are (image, label) tensors already",
}
# Arguments that are settings of another place here.
_ELSEWHERE = {
    ("LoadAnnotations", "reduce_zero_label"): "labels are reduced once, when the prepare stage writes them: set "
                                              "prepare.reduce_zero_label (SegFolder)",
    ("Normalize", "to_rgb"): "the prepared images are RGB, so mean and std apply in RGB order (what to_rgb=True "
                             "does for OpenCV's BGR images)",
    ("RandomResize", "resize_type"): "the resize is always MMSeg's Resize (bilinear image, nearest label)",
}


def map_dataset(node: Any, path: str, split: str, pipelines: dict[str, tuple[Any, list[dict[str, Any]]]],
                skip: Callable[[str, str], None]) -> None:
    """A `<split>_dataloader.dataset` at `path`: its pipeline goes into `pipelines` (params key -> (MMSeg's list,
    mapped steps)): train's as `pipeline`, val's as `test_pipeline`, which test shares. MMSeg's dataset classes read
    folder layouts, while the dataset here reads what `prepare` wrote, so its other keys are listed."""
    if not isinstance(node, dict):
        skip(path, f"expected a dict, got {node!r}")
        return
    kind = short_type(node.get("type"))
    for key, value in node.items():
        if key != "pipeline":
            skip(f"{path}.{key}", f"goes with the dataset class {kind!r}, which has no counterpart here (the "
                                  f"example's SegDataset reads what the prepare stage writes under data.root)")
            continue
        target = "pipeline" if split == "train" else "test_pipeline"
        if target in pipelines:  # test after val: one test pipeline serves both
            if value != pipelines[target][0]:
                skip(f"{path}.pipeline", "validation and test share data.dataset.test_pipeline (mapped from "
                                         "val_dataloader's)")
            continue
        pipelines[target] = (value, map_pipeline(value, f"{path}.pipeline", skip, test=split != "train"))


def map_pipeline(steps: Any, path: str, skip: Callable[[str, str], None], *, test: bool) -> list[dict[str, Any]]:
    """The params.yaml steps of the MMSeg pipeline `steps` at `path` (e.g. train_dataloader.dataset.pipeline);
    what does not map is passed to `skip(key, reason)`."""
    if not isinstance(steps, list):
        skip(path, f"expected a list of transforms, got {steps!r}")
        return []
    mapped = []
    for i, step in enumerate(steps):
        where = f"{path}.{i}"
        name = short_type(step.get("type")) if isinstance(step, dict) else None
        if name is None or not isinstance(step, dict):
            skip(where, f"expected a transform dict with a type, got {step!r}")
            continue
        if name in _IMPLICIT:
            for key in step:
                if key != "type":
                    skip(f"{where}.{key}", _ELSEWHERE.get((name, key), f"{name} is implicit here "
                                                                      f"({_IMPLICIT[name]})"))
            continue
        out = _step(name, step, where, skip, test=test)
        if out is not None:
            mapped.append(out)
    return mapped


def _step(name: str, step: dict[str, Any], where: str, skip: Callable[[str, str], None], *,
          test: bool) -> dict[str, Any] | None:
    kwargs = {k: v for k, v in step.items() if k != "type"}
    if name == "Resize" and "img_scale" in kwargs:
        # MMSeg 0.x: Resize(img_scale, ratio_range) is 1.x's RandomResize; without ratio_range, a plain Resize.
        kwargs["scale"] = kwargs.pop("img_scale")
        if kwargs.get("ratio_range") is not None:
            name = "RandomResize"
        else:
            kwargs.pop("ratio_range", None)
    if name not in TRANSFORM_ARGS:
        skip(where, f"{name}: no such transform here; the transforms are {', '.join(TRANSFORM_ARGS)} "
                    f"(docs/datasets.md, Pipelines)")
        return None
    if test and name not in TEST_TRANSFORMS:
        skip(where, f"{name}: the test pipeline here changes the image only ({', '.join(TEST_TRANSFORMS)}), so "
                    f"predictions cover the stored label")
        return None
    if name == "RandomFlip" and not (isinstance(kwargs.get("prob", 0.5), (int, float))
                                     and isinstance(kwargs.get("direction", "horizontal"), str)):
        skip(where, "RandomFlip here takes one prob and one direction (horizontal or vertical), not lists")
        return None
    kept: dict[str, Any] = {"type": name}
    for key, value in kwargs.items():
        if key in TRANSFORM_ARGS[name]:
            kept[key] = list(value) if isinstance(value, tuple) else value
        elif (name, key) in _ELSEWHERE:
            skip(f"{where}.{key}", _ELSEWHERE[(name, key)])
        else:
            skip(f"{where}.{key}", f"{name} here takes {', '.join(TRANSFORM_ARGS[name])}")
    return kept
