"""`trainline predict` for the segmentation example: new images in, index masks, colour masks and overlays out."""

from __future__ import annotations

import inspect
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import UserError
from engine.seg.inference import slide_logits, whole_logits
from engine.seg.models.base import parse_test_cfg
from engine.seg.visualize import palette

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# What becomes the 3-channel 8-bit RGB the model was trained on without a guess: grey and palette images are
# expanded, RGBA loses its alpha (as MMSeg's colour imread does). 16-bit, float, 2-channel (grey + alpha), CMYK...
# are refused: their conversion needs a choice (scaling, compositing) the user should make knowingly.
_CONVERTIBLE = {"1", "L", "P", "RGB", "RGBA"}
_CHANNELS = {"LA": 2, "PA": 2, "La": 2, "CMYK": 4, "YCbCr": 3, "LAB": 3, "HSV": 3, "I": 1, "F": 1, "I;16": 1,
             "I;16B": 1, "I;16L": 1, "I;16N": 1, "RGBa": 4, "RGBX": 4}
FALLBACK_CROP = 512  # MMSeg's usual crop when neither params nor data say what size the model was trained on


class BadInput(ValueError):
    """One input file that cannot be predicted; its message is the line the user sees (after the file name)."""


@dataclass(frozen=True)
class Settings:
    mode: str = "auto"  # auto: whole when the image fits in the crop, else slide
    crop_size: tuple[int, int] | None = None  # None: the training image size (see `default_crop`)
    stride: tuple[int, int] | None = None  # None: two thirds of the crop, as MMSeg's 512/341
    alpha: float = 0.5  # weight of the class colour in the overlay
    batch_size: int = 8  # sliding windows per forward pass


def predict(model: torch.nn.Module, cfg: dict[str, Any], source: Path, out_dir: Path,
            options: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The predictor `trainline predict` calls by default: every image of `source` (a file, or a directory's image
    files, not recursive) through `model`, three PNGs each under `out_dir`. Returns (one line per written image,
    one line per bad input); a bad input writes nothing and does not stop the others."""
    settings = Settings(**{k: v for k, v in options.items() if k in Settings.__dataclass_fields__})
    logits_of = getattr(model, "predict_logits", None)
    if not callable(logits_of):
        raise UserError(f"model.type: {cfg['model']['type']} has no predict_logits(images) method; the segmentation "
                        f"predictor needs per-pixel logits (N, C, H, W) (docs/predict.md)")
    inputs = list_inputs(source, out_dir)
    # `auto` follows the params' model.test_cfg when they set one (the inference the eval stage scored), else it
    # picks per image; --crop-size / --stride given on the command line win over the params' sizes.
    cfg_mode, cfg_crop, cfg_stride = test_cfg_of(cfg)
    crop = settings.crop_size or cfg_crop or default_crop(cfg)
    stride = settings.stride or cfg_stride or (max(1, crop[0] * 2 // 3), max(1, crop[1] * 2 // 3))
    mean, std = normalisation(cfg)
    device = next(model.parameters()).device
    mean, std = mean.to(device), std.to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    done, problems = [], []
    for path, name in output_names(inputs).items():
        try:
            rgb = read_image(path)
        except BadInput as exc:
            problems.append(f"{path}: {exc}")
            continue
        image = (torch.from_numpy(rgb).to(device).permute(2, 0, 1).float() - mean) / std
        height, width = rgb.shape[:2]
        mode = cfg_mode if settings.mode == "auto" and cfg_mode else settings.mode
        if mode == "auto":
            mode = "whole" if height <= crop[0] and width <= crop[1] else "slide"
        if mode == "whole":
            logits = whole_logits(logits_of, image)
        else:
            logits = slide_logits(logits_of, image, crop, stride, settings.batch_size)
        labels = logits.argmax(dim=0).cpu().numpy()
        written = write_outputs(out_dir, name, rgb, labels, logits.shape[0], settings.alpha)
        how = "whole" if mode == "whole" else f"slide {crop[0]}x{crop[1]} stride {stride[0]}x{stride[1]}"
        done.append(f"{path}: {height}x{width}, {how} -> {', '.join(str(p) for p in written)}")
    return done, problems


def test_cfg_of(cfg: dict[str, Any]) -> tuple[str | None, tuple[int, int] | None, tuple[int, int] | None]:
    """`(mode, crop, stride)` of the params' `model.test_cfg`, or `(None, None, None)` when it is not set."""
    test_cfg = (cfg.get("model") or {}).get("test_cfg")
    if test_cfg is None:
        return None, None, None
    try:
        return parse_test_cfg(test_cfg)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def list_inputs(source: Path, out_dir: Path) -> list[Path]:
    """`source` itself, or the image files (by suffix, hidden ones left out) directly in the directory, sorted."""
    if not source.exists():
        raise UserError(f"--input: {source} not found; give an image file or a directory of images")
    folder = source.parent if source.is_file() else source
    if out_dir.exists() and out_dir.resolve() == folder.resolve():
        # A mask `a.png` would replace the image `a.png`, and the next run would take the outputs for inputs.
        raise UserError(f"--out: {out_dir} is the input directory; give another directory")
    if source.is_file():
        return [source]
    found = sorted(p for p in source.iterdir()
                   if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
    if not found:
        raise UserError(f"--input: {source} holds no images ({', '.join(SUFFIXES)}); give a file or another directory")
    return found


def output_names(inputs: list[Path]) -> dict[Path, str]:
    """The output stem of each input: its own stem, unless two inputs (`a.png`, `a.jpg`) or an input and another's
    outputs (`a_color.png`) would write the same file; then the suffix is kept (`a_jpg`)."""
    taken: set[str] = set()
    names = {}
    for path in inputs:
        for stem in (path.stem, f"{path.stem}_{path.suffix.lstrip('.').lower()}", path.name.replace(".", "_")):
            files = {f"{stem}.png", f"{stem}_color.png", f"{stem}_overlay.png"}
            if not files & taken:
                break
        n = 2
        while files & taken:  # pathological names: number them
            stem = f"{path.stem}_{n}"
            files, n = {f"{stem}.png", f"{stem}_color.png", f"{stem}_overlay.png"}, n + 1
        taken |= files
        names[path] = stem
    return names


def read_image(path: Path) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB; anything else raises BadInput saying what the file is and what was expected."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode, size = img.mode, img.size
            if mode not in _CONVERTIBLE:
                channels = _CHANNELS.get(mode, len(img.getbands()))
                depth = " 16-bit" if mode.startswith("I;16") else (" 32-bit" if mode in ("I", "F") else "")
                raise BadInput(f"{channels}-channel{depth} image (Pillow mode {mode}); the model takes 8-bit RGB "
                               f"(grey, palette and RGBA are converted); convert it to 8-bit RGB first")
            rgb = np.array(img.convert("RGB"))  # a writable copy, for torch
    except UnidentifiedImageError:
        raise BadInput("not an image Pillow can read (PNG, JPEG, BMP, TIFF, WebP)") from None
    except Image.DecompressionBombError as exc:
        raise BadInput(f"too large to open safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data, unreadable file
        raise BadInput(f"cannot be read: {exc}") from None
    if min(size) < 1:
        raise BadInput(f"empty image ({size[0]}x{size[1]})")
    return rgb


def default_crop(cfg: dict[str, Any]) -> tuple[int, int]:
    """The training image size: `prepare.image_size` (an int or [h, w]), else the prepared data's meta.json, else
    512."""
    import json

    size = (cfg.get("prepare") or {}).get("image_size")
    if size is None:
        meta = Path(cfg["data"]["root"]) / "meta.json"
        try:
            size = json.loads(meta.read_text(encoding="utf-8")).get("image_size")
        except (OSError, ValueError, AttributeError):
            size = None
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size, size
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
        return int(size[0]), int(size[1])
    return FALLBACK_CROP, FALLBACK_CROP


def normalisation(cfg: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(3, 1, 1)` mean and std the dataset normalised with: `data.dataset.mean/std` if set, else the defaults of
    the dataset class's signature, else SegDataset's (MMSeg's ImageNet values on 0..255)."""
    from engine.config.resolve import resolve_type
    from engine.seg.dataset import SegDataset

    node = cfg["data"]["dataset"]
    values = {}
    for cls in (resolve_type(node["type"], "dataset"), SegDataset):
        try:
            params = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            continue
        for key in ("mean", "std"):
            if key not in values and key in params and params[key].default is not inspect.Parameter.empty:
                values[key] = params[key].default
    mean, std = node.get("mean", values["mean"]), node.get("std", values["std"])
    return (torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
            torch.tensor(std, dtype=torch.float32).view(3, 1, 1))


def colour_mask(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    return colours[labels]


def overlay(rgb: np.ndarray, labels: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """The image with each pixel's class colour blended in at `alpha`."""
    mixed = (1 - alpha) * rgb.astype(np.float32) + alpha * colours[labels].astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)


def write_outputs(out_dir: Path, name: str, rgb: np.ndarray, labels: np.ndarray, num_classes: int,
                  alpha: float) -> list[Path]:
    """`<name>.png` (class indices; palette mode, so viewers show colours), `<name>_color.png`, `<name>_overlay.png`,
    each written to a temporary name and renamed: a file is whole or absent."""
    from PIL import Image

    from engine.checkpoint import atomic_write_bytes

    colours = palette(num_classes)
    if num_classes <= 256:
        index = Image.fromarray(labels.astype(np.uint8))
        index.putpalette(colours.reshape(-1).tolist())  # L -> P: the pixel values stay the class indices
    else:  # more classes than a palette holds: 16-bit grey indices
        index = Image.fromarray(labels.astype(np.uint16))
    pictures = {f"{name}.png": index, f"{name}_color.png": Image.fromarray(colour_mask(labels, colours)),
                f"{name}_overlay.png": Image.fromarray(overlay(rgb, labels, colours, alpha))}
    paths = []
    for file_name, picture in pictures.items():
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        atomic_write_bytes(out_dir / file_name, buffer.getvalue())
        paths.append(out_dir / file_name)
    return paths
