"""The synthetic dataset generator: determinism, array layout, meta.json contents and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.seg import synthetic
from engine.seg.synthetic import generate_dataset

SMALL = {"image_size": 32, "num_train": 12, "num_val": 4, "num_test": 6}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_is_byte_identical(tmp_path):
    generate_dataset(tmp_path / "a", seed=3, **SMALL)
    generate_dataset(tmp_path / "b", seed=3, **SMALL)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    arrays = [f"{split}/{name}" for split in ("test", "train", "val") for name in ("images.npy", "masks.npy")]
    assert sorted(a) == ["meta.json", *arrays]
    assert a == b


def test_different_seed_differs(tmp_path):
    generate_dataset(tmp_path / "a", seed=0, **SMALL)
    generate_dataset(tmp_path / "b", seed=1, **SMALL)
    for split in ("train", "val", "test"):
        a = np.load(tmp_path / "a" / split / "images.npy")
        b = np.load(tmp_path / "b" / split / "images.npy")
        assert not np.array_equal(a, b)


def test_splits_are_independent_streams(tmp_path):
    # Growing the train split must not change val/test, so evaluation sets stay comparable.
    generate_dataset(tmp_path / "a", seed=5, **SMALL)
    generate_dataset(tmp_path / "b", seed=5, **{**SMALL, "num_train": 20})
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    for split in ("val", "test"):
        assert a[f"{split}/images.npy"] == b[f"{split}/images.npy"]
        assert a[f"{split}/masks.npy"] == b[f"{split}/masks.npy"]
    assert a["train/images.npy"] != b["train/images.npy"]
    val, test = np.load(tmp_path / "a" / "val" / "images.npy"), np.load(tmp_path / "a" / "test" / "images.npy")
    assert not np.array_equal(val, test[: len(val)])  # each split has its own stream


def test_shapes_dtypes_and_meta(tmp_path):
    meta = generate_dataset(tmp_path / "d", seed=1, **SMALL)
    assert meta == json.loads((tmp_path / "d" / "meta.json").read_text())
    classes = meta["classes"]
    assert classes[0] == "background" and len(classes) >= 4
    assert len(meta["palette"]) == len(classes) and all(len(c) == 3 for c in meta["palette"])
    assert meta["image_size"] == 32 and meta["seed"] == 1 and meta["format_version"] == synthetic.FORMAT_VERSION
    assert meta["counts"] == {"train": 12, "val": 4, "test": 6}
    for split, n in meta["counts"].items():
        images = np.load(tmp_path / "d" / split / "images.npy")
        masks = np.load(tmp_path / "d" / split / "masks.npy")
        assert images.shape == (n, 32, 32, 3) and images.dtype == np.uint8
        assert masks.shape == (n, 32, 32) and masks.dtype == np.uint8
        assert int(masks.max()) < len(classes)
        assert meta["pixel_counts"][split] == np.bincount(masks.ravel(), minlength=len(classes)).tolist()


def test_all_classes_present_and_images_textured(tmp_path):
    meta = generate_dataset(tmp_path / "d", seed=2, **SMALL)
    for split in ("train", "val", "test"):
        assert all(c > 0 for c in meta["pixel_counts"][split]), split
    images = np.load(tmp_path / "d" / "train" / "images.npy").astype(np.float32)
    masks = np.load(tmp_path / "d" / "train" / "masks.npy")
    # Background is not one flat colour: there is texture (gradient, stripes, noise) to see past.
    assert images[masks == 0].std(axis=0).min() > 10


def test_custom_classes(tmp_path):
    classes = ["background", "ring", "cross"]
    meta = generate_dataset(tmp_path / "d", seed=0, classes=classes, **SMALL)
    assert meta["classes"] == classes
    assert all(c > 0 for c in meta["pixel_counts"]["train"])
    with pytest.raises(ValueError, match="unsupported"):
        generate_dataset(tmp_path / "e", seed=0, classes=["background", "hexagon"], **SMALL)
    assert not (tmp_path / "e").exists()


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic.np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "d", seed=0, **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_rewrite_replaces_existing_dataset_atomically(tmp_path, monkeypatch):
    generate_dataset(tmp_path / "d", seed=0, **SMALL)
    before = _files(tmp_path / "d")
    monkeypatch.setattr(synthetic, "_background", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.raises(RuntimeError):
        generate_dataset(tmp_path / "d", seed=1, **SMALL)
    assert _files(tmp_path / "d") == before  # a failed regeneration keeps the old dataset intact
    monkeypatch.undo()
    generate_dataset(tmp_path / "d", seed=1, **SMALL)
    assert _files(tmp_path / "d") != before
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temp or backup dirs left behind
