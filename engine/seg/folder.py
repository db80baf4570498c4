"""`SegFolder`, the prepare source for segmentation datasets as they ship (ADE20K, Cityscapes, generic image and
annotation folders): pairs and validates every file, then writes the flat prepared form SegDataset reads."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError
from engine.seg.class_names import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    default_palette,
)
from engine.seg.prepared import hash_arrays, replace_dir

FORMAT_VERSION = 2
SPLITS = ("train", "val", "test")
# What each layout fills in for the arguments left unset. ADE20K and Cityscapes publish no test labels, so their
# test split is read from val (MMSeg's configs evaluate on val too).
LAYOUTS: dict[str, dict[str, Any]] = {
    "ade20k": {"img_dir": "images", "ann_dir": "annotations", "img_suffix": ".jpg", "seg_map_suffix": ".png",
               "split_dirs": {"train": "training", "val": "validation"}, "reduce_zero_label": True,
               "classes": ADE20K_CLASSES, "palette": ADE20K_PALETTE},
    "cityscapes": {"img_dir": "leftImg8bit", "ann_dir": "gtFine", "img_suffix": "_leftImg8bit.png",
                   "seg_map_suffix": "_gtFine_labelTrainIds.png", "split_dirs": {"train": "train", "val": "val"},
                   "reduce_zero_label": False, "classes": CITYSCAPES_CLASSES, "palette": CITYSCAPES_PALETTE},
    "generic": {"img_dir": "img_dir", "ann_dir": "ann_dir", "img_suffix": ".jpg", "seg_map_suffix": ".png",
                "split_dirs": {"train": "train", "val": "val", "test": "test"}, "reduce_zero_label": False,
                "classes": None, "palette": None},
}
_log = logging.getLogger("trainline")


@dataclass
class _Pair:
    split: str
    key: str          # the path under the split's folder, without the suffix (Cityscapes: city/name)
    image: Path
    mask: Path
    height: int = 0
    width: int = 0


def prepare_folder(
    root: str | Path,
    *,
    source: str,
    layout: str = "generic",
    classes: list[str] | None = None,
    seed: int = 0,
    img_dir: str | None = None,
    ann_dir: str | None = None,
    img_suffix: str | None = None,
    seg_map_suffix: str | None = None,
    split_dirs: dict[str, str] | None = None,
    split: dict[str, str] | None = None,
    split_ratio: dict[str, float] | None = None,
    reduce_zero_label: bool | None = None,
    palette: list[list[int]] | None = None,
    ignore_index: int = 255,
    size: int | list[int] | None = None,
) -> dict:
    """Read ``source`` laid out as ``layout``, validate every pair, write ``root`` in the flat prepared form.

    Splits come from ``split`` (files listing one key per line: the path under ``img_dir`` without the suffix), else
    ``split_ratio`` (``{train: 0.8, val: 0.1, test: 0.1}``, a seeded shuffle of every pair), else ``split_dirs``
    (one folder per split under ``img_dir`` and ``ann_dir``; a missing test folder means test reads val). Masks are
    index images, or RGB images mapped through ``palette`` (colour i is class i). With ``reduce_zero_label`` label 0
    becomes ``ignore_index`` and the others drop by one (ADE20K's "other"). ``size`` resizes every pair to one
    ``[height, width]`` (bilinear image, nearest mask) so fixed-size batches work until a crop transform exists.

    Every problem (unpaired files, unreadable files, image/mask size mismatches, unknown colours, labels outside the
    classes) is collected, then raised together as one ConfigError, one line per file; nothing is written then.
    """
    preset = LAYOUTS.get(layout)
    if preset is None:
        raise ValueError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    src = Path(source)
    if not src.is_dir():
        raise ConfigError([f"prepare.source: {src} is not a directory (the dataset's folder, relative to the "
                           f"project root)"])
    opts = _options(preset, classes, img_dir, ann_dir, img_suffix, seg_map_suffix, split_dirs, split, split_ratio,
                    reduce_zero_label, palette, ignore_index, size)
    problems: list[str] = []
    pairs, aliases = _find_pairs(src, opts, seed, problems)
    for pair in pairs:
        _read_sizes(pair, opts, problems)
    good = [p for p in pairs if p.height]
    out_dir = Path(root)
    made_parent = not out_dir.parent.exists()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        meta = _write(tmp, good, opts, problems)
        if problems:
            raise ConfigError([*problems, f"prepare: {len(problems)} problem(s) in {src}; nothing was written to "
                                          f"{out_dir}"])
        meta.update(source=str(source), layout=layout, seed=seed, aliases=aliases)
        meta["counts"].update({alias: meta["counts"][target] for alias, target in aliases.items()})
        names = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
        meta["content_hash"] = hash_arrays([tmp / n for n in names])
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if made_parent and not any(out_dir.parent.iterdir()):
            out_dir.parent.rmdir()  # nothing at all left behind
        raise
    return meta


def _options(preset: dict[str, Any], classes: list[str] | None, img_dir: str | None, ann_dir: str | None,
             img_suffix: str | None, seg_map_suffix: str | None, split_dirs: dict[str, str] | None,
             split: dict[str, str] | None, split_ratio: dict[str, float] | None, reduce_zero_label: bool | None,
             palette: list[list[int]] | None, ignore_index: int, size: int | list[int] | None) -> dict[str, Any]:
    """The layout's defaults under the given arguments, each argument checked (a ValueError names it)."""
    names = list(classes) if classes is not None else preset["classes"]
    if names is None:
        raise ValueError("classes: the generic layout needs the class names; set data.classes (offered as classes)")
    if preset["classes"] is not None and len(names) != len(preset["classes"]):
        raise ValueError(f"classes: this layout has {len(preset['classes'])} classes, got {len(names)} names")
    if not 0 <= ignore_index <= 255 or ignore_index < len(names):
        raise ValueError(f"ignore_index must lie in {len(names)}..255 (masks are stored as uint8 and it must not "
                         f"be a class), got {ignore_index}")
    if split is not None and split_ratio is not None:
        raise ValueError("give split (list files) or split_ratio, not both")
    for name, given in (("split", split), ("split_ratio", split_ratio), ("split_dirs", split_dirs)):
        if given is not None and (not isinstance(given, dict) or not {"train", "val"} <= set(given) <= set(SPLITS)):
            raise ValueError(f"{name} must map train, val (and optionally test) to values, got {given!r}")
    if split_ratio is not None:
        ratios = list(split_ratio.values())
        if any(not isinstance(r, (int, float)) or r <= 0 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
            raise ValueError(f"split_ratio must hold positive fractions that sum to 1, got {split_ratio}")
    if palette is not None and (len(palette) != len(names) or any(
            not isinstance(c, list) or len(c) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in palette)):
        raise ValueError(f"palette must hold one [r, g, b] (0..255) per class ({len(names)}), got {palette!r}")
    if palette is not None and len({tuple(c) for c in palette}) != len(palette):
        raise ValueError("palette repeats a colour, so an RGB mask could not tell those classes apart")
    hw = None
    if size is not None:
        hw = [size, size] if isinstance(size, int) else list(size)
        if len(hw) != 2 or not all(isinstance(v, int) and v >= 1 for v in hw):
            raise ValueError(f"size must be an integer or [height, width] of positive integers, got {size!r}")
    return {"classes": names, "img_dir": img_dir or preset["img_dir"], "ann_dir": ann_dir or preset["ann_dir"],
            "img_suffix": img_suffix or preset["img_suffix"], "seg_map_suffix": seg_map_suffix or
            preset["seg_map_suffix"], "split_dirs": split_dirs or preset["split_dirs"], "split": split,
            "split_ratio": split_ratio, "reduce_zero_label": preset["reduce_zero_label"] if reduce_zero_label is None
            else reduce_zero_label, "rgb_palette": palette, "palette": palette or preset["palette"] or
            default_palette(len(names)), "ignore_index": ignore_index, "size": hw}


def _scan(folder: Path, suffix: str) -> dict[str, Path]:
    """``key -> path`` of the files under ``folder`` (recursively) whose names end with ``suffix``."""
    out = {}
    for path in sorted(folder.rglob(f"*{suffix}")):
        if path.is_file() and not path.name.startswith("."):
            out[path.relative_to(folder).as_posix()[: -len(suffix)]] = path
    return out


def _pair_up(split: str, images: dict[str, Path], masks: dict[str, Path], keys: list[str], opts: dict[str, Any],
             problems: list[str]) -> list[_Pair]:
    out = []
    for key in keys:
        if key in images and key in masks:
            out.append(_Pair(split, key, images[key], masks[key]))
        elif key in images:
            problems.append(f"{images[key]}: no annotation (expected a file named {key}{opts['seg_map_suffix']} "
                            f"under {opts['ann_dir']})")
        elif key in masks:
            problems.append(f"{masks[key]}: no image (expected a file named {key}{opts['img_suffix']} under "
                            f"{opts['img_dir']})")
    return out


def _find_pairs(src: Path, opts: dict[str, Any], seed: int, problems: list[str]) -> tuple[list[_Pair], dict]:
    """Every (image, mask) pair by split, and the splits read from another (``{"test": "val"}``)."""
    img_root, ann_root = src / opts["img_dir"], src / opts["ann_dir"]
    for folder in (img_root, ann_root):
        if not folder.is_dir():
            problems.append(f"{folder}: no such directory (img_dir / ann_dir under prepare.source)")
    if problems:
        return [], {}
    pairs: list[_Pair] = []
    aliases: dict[str, str] = {}
    if opts["split"] is not None or opts["split_ratio"] is not None:
        images, masks = _scan(img_root, opts["img_suffix"]), _scan(ann_root, opts["seg_map_suffix"])
        if opts["split"] is not None:
            for name, list_file in opts["split"].items():
                keys = _read_list(src / list_file, images, masks, opts, problems)
                pairs += _pair_up(name, images, masks, keys, opts, problems)
        else:
            paired = _pair_up("", images, masks, sorted(set(images) | set(masks)), opts, problems)
            order = np.random.Generator(np.random.PCG64(seed)).permutation(len(paired))
            bounds = np.rint(np.cumsum(list(opts["split_ratio"].values())) * len(paired)).astype(int)
            for name, lo, hi in zip(opts["split_ratio"], [0, *bounds[:-1]], bounds, strict=True):
                pairs += [_Pair(name, p.key, p.image, p.mask) for p in (paired[i] for i in sorted(order[lo:hi]))]
    else:
        for name, sub in opts["split_dirs"].items():
            if name == "test" and not (img_root / sub).is_dir() and not (ann_root / sub).is_dir():
                continue  # no test folder: test reads val
            images, masks = _scan(img_root / sub, opts["img_suffix"]), _scan(ann_root / sub, opts["seg_map_suffix"])
            pairs += _pair_up(name, images, masks, sorted(set(images) | set(masks)), opts, problems)
    named = {p.split for p in pairs} | set(opts["split"] or opts["split_ratio"] or {"train", "val"})
    if "test" not in named:
        aliases["test"] = "val"
    for name in sorted(named, key=SPLITS.index):
        if not any(p.split == name for p in pairs):
            sub = "" if opts["split"] or opts["split_ratio"] else f"/{opts['split_dirs'][name]}"
            problems.append(f"prepare: the {name} split has no pairs ({opts['img_suffix']} images under "
                            f"{img_root}{sub}, {opts['seg_map_suffix']} masks under {ann_root}{sub})")
    return pairs, aliases


def _read_list(path: Path, images: dict[str, Path], masks: dict[str, Path], opts: dict[str, Any],
               problems: list[str]) -> list[str]:
    if not path.is_file():
        problems.append(f"{path}: split list not found (prepare.split names it, relative to prepare.source)")
        return []
    keys = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        key = line.strip()
        if key and key not in images and key not in masks:
            problems.append(f"{path}:{number}: {key!r} has neither an image ({key}{opts['img_suffix']} under "
                            f"{opts['img_dir']}) nor an annotation")
        elif key:
            keys.append(key)
    return keys


def _read_sizes(pair: _Pair, opts: dict[str, Any], problems: list[str]) -> None:
    """Image and mask headers only (no decoding): unreadable files, size mismatches and mask modes."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(pair.image) as image:
            image_size = image.size
        with Image.open(pair.mask) as mask:
            mask_size, mode = mask.size, mask.mode
    except (UnidentifiedImageError, OSError) as exc:
        problems.append(f"{exc.filename if getattr(exc, 'filename', None) else pair.image}: not a readable image "
                        f"({exc})")
        return
    if mask_size != image_size:
        problems.append(f"{pair.mask}: {mask_size[0]}x{mask_size[1]} pixels, but its image {pair.image} is "
                        f"{image_size[0]}x{image_size[1]}")
    elif opts["rgb_palette"] is None and mode in ("RGB", "RGBA"):
        problems.append(f"{pair.mask}: an {mode} mask, but no prepare.palette maps its colours to classes (give the "
                        f"palette, or save index masks: PNG mode L or P)")
    else:
        pair.width, pair.height = image_size


def _labels(pair: _Pair, opts: dict[str, Any], problems: list[str]) -> np.ndarray | None:
    """The mask as class indices (ignore_index where ignored), or None after recording what is wrong."""
    from PIL import Image

    n, ignore = len(opts["classes"]), opts["ignore_index"]
    with Image.open(pair.mask) as mask:
        if opts["rgb_palette"] is not None:
            rgb = np.asarray(mask.convert("RGB"), dtype=np.int32)
            codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            table = np.array([(r << 16) | (g << 8) | b for r, g, b in opts["rgb_palette"]], dtype=np.int32)
            order = np.argsort(table)
            pos = np.clip(np.searchsorted(table[order], codes), 0, n - 1)
            known = table[order][pos] == codes
            if not known.all():
                unknown = np.unique(codes[~known])
                shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255})" for c in unknown[:3].tolist())
                problems.append(f"{pair.mask}: colour(s) {shown}{', ...' if len(unknown) > 3 else ''} are not in "
                                f"prepare.palette ({int((~known).sum())} pixels)")
                return None
            return order[pos].astype(np.int64)
        raw = np.asarray(mask, dtype=np.int64)
    if raw.ndim != 2:
        problems.append(f"{pair.mask}: a {raw.ndim}-dimensional mask, expected a single-channel index image")
        return None
    labels = raw
    if opts["reduce_zero_label"]:
        labels = np.where((raw == 0) | (raw == ignore), ignore, raw - 1)
    bad = ((labels < 0) | (labels >= n)) & (labels != ignore)
    if bad.any():
        values = np.unique(raw[bad])
        valid = f"1..{n} (reduce_zero_label: 0 is ignored)" if opts["reduce_zero_label"] else f"0..{n - 1}"
        shown = ", ".join(map(str, values[:5].tolist())) + (", ..." if len(values) > 5 else "")
        problems.append(f"{pair.mask}: label values {shown} are outside the {n} classes ({valid}) and not "
                        f"ignore_index {ignore}")
        return None
    return labels


def _write(tmp: Path, pairs: list[_Pair], opts: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Decode every pair into the split's flat arrays under ``tmp``; the meta dict (without source details)."""
    from PIL import Image

    n, counts, pixel_counts = len(opts["classes"]), {}, {}
    for name in SPLITS:
        items = [p for p in pairs if p.split == name]
        if not items:
            continue
        shapes = [tuple(opts["size"]) if opts["size"] else (p.height, p.width) for p in items]
        areas = np.array([h * w for h, w in shapes], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64)
        total = int(areas.sum())
        (tmp / name).mkdir()
        fmt = np.lib.format
        images = fmt.open_memmap(tmp / name / "images.npy", mode="w+", dtype=np.uint8, shape=(total, 3))
        masks = fmt.open_memmap(tmp / name / "masks.npy", mode="w+", dtype=np.uint8, shape=(total,))
        hist = np.zeros(n + 1, dtype=np.int64)
        for pair, (h, w), start in zip(items, shapes, starts, strict=True):
            labels = _labels(pair, opts, problems)
            if labels is None:
                continue
            with Image.open(pair.image) as image:
                rgb = image.convert("RGB")
                if opts["size"]:
                    rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
                    small = Image.fromarray(labels.astype(np.uint8)).resize((w, h), Image.Resampling.NEAREST)
                    labels = np.asarray(small)
                images[start:start + h * w] = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
            masks[start:start + h * w] = labels.reshape(-1)
            hist += np.bincount(np.where(labels == opts["ignore_index"], n, labels).reshape(-1), minlength=n + 1)
        images.flush()
        masks.flush()
        del images, masks
        np.save(tmp / name / "index.npy", np.stack([starts, [h for h, _ in shapes], [w for _, w in shapes]], axis=1))
        (tmp / name / "names.txt").write_text("".join(f"{p.key}\n" for p in items))
        counts[name] = len(items)
        pixel_counts[name] = hist[:n].tolist()
        _log.info("prepare: %s: %d pairs, %.1f Mpixels", name, len(items), total / 1e6)
    return {"format_version": FORMAT_VERSION, "storage": "flat", "classes": opts["classes"],
            "palette": [list(c) for c in opts["palette"]], "ignore_index": opts["ignore_index"],
            "reduce_zero_label": opts["reduce_zero_label"], "size": opts["size"], "counts": counts,
            "pixel_counts": pixel_counts}
