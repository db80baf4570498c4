"""SegFolder: each layout read into the flat prepared form, split choices, RGB masks, and every problem at once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.seg.class_names import ADE20K_CLASSES, CITYSCAPES_CLASSES
from engine.seg.dataset import SegDataset
from engine.seg.folder import prepare_folder
from tests.engine.seg import folder_fixtures as ff

CLASSES = ["bg", "a", "b"]


def test_ade20k_layout_reduces_zero_label_and_reads_test_from_val(tmp_path):
    raw = ff.ade20k(tmp_path / "ADE")
    meta = prepare_folder(tmp_path / "data", source=str(tmp_path / "ADE"), layout="ade20k")
    assert meta["classes"] == ADE20K_CLASSES and meta["counts"] == {"train": 3, "val": 2, "test": 2}
    assert meta["aliases"] == {"test": "val"} and meta["reduce_zero_label"] is True
    train = SegDataset(tmp_path / "data", "train", flip=False, classes=ADE20K_CLASSES)
    want = raw["training/ADE_train_00000001"].astype(np.int64)
    want = np.where(want == 0, 255, want - 1)  # MMSeg's reduce_zero_label
    image, mask = train[1]
    assert image.shape == (3, *want.shape) and np.array_equal(mask.numpy(), want)
    assert mask[0, 0] == 255 and mask[0, 1] == 149
    test, val = SegDataset(tmp_path / "data", "test"), SegDataset(tmp_path / "data", "val")
    assert len(test) == 2 and np.array_equal(test[0][1].numpy(), val[0][1].numpy())


def test_cityscapes_layout_pairs_by_city_and_keeps_ignore(tmp_path):
    raw = ff.cityscapes(tmp_path / "cs")
    meta = prepare_folder(tmp_path / "data", source=str(tmp_path / "cs"), layout="cityscapes")
    assert meta["classes"] == CITYSCAPES_CLASSES and meta["counts"]["train"] == 2
    names = (tmp_path / "data" / "train" / "names.txt").read_text().split()
    assert names == ["aachen/aachen_000000_000019", "bochum/bochum_000001_000019"]
    _, mask = SegDataset(tmp_path / "data", "train", flip=False)[1]
    assert np.array_equal(mask.numpy(), raw[f"train/{names[1]}"]) and (mask == 255).any()


def test_generic_split_dirs_keep_pixels_and_sizes_and_prepare_is_byte_identical(tmp_path):
    masks = {}
    for split, names in (("train", ["x1", "x2", "x3"]), ("val", ["y1"]), ("test", ["z1", "z2"])):
        masks.update(ff.generic(tmp_path / "src", names=names, subdir=split, seed=len(names)))
    kwargs = {"source": str(tmp_path / "src"), "classes": CLASSES, "img_suffix": ".png", "seed": 3}
    meta = prepare_folder(tmp_path / "a", **kwargs)
    assert meta["counts"] == {"train": 3, "val": 1, "test": 2} and meta["aliases"] == {}
    ds = SegDataset(tmp_path / "a", "test", flip=False)
    image, mask = ds[1]
    assert tuple(mask.shape) == masks["z2"].shape and np.array_equal(mask.numpy(), masks["z2"])
    expected_image = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "src/img_dir/test/z2.png"))
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy() * ds.std.view(1, 1, 3).numpy()
                               + ds.mean.view(1, 1, 3).numpy(), expected_image, atol=1e-3)
    again = prepare_folder(tmp_path / "b", **kwargs)
    assert again["content_hash"] == meta["content_hash"]
    for name in ("meta.json", "train/images.npy", "train/masks.npy", "train/index.npy"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_split_lists_and_seeded_split_ratio(tmp_path):
    ff.generic(tmp_path / "src", names=[f"n{i}" for i in range(10)])
    (tmp_path / "src" / "train.txt").write_text("n0\nn1\nn2\n\n")
    (tmp_path / "src" / "val.txt").write_text("n3\n")
    listed = prepare_folder(tmp_path / "lists", source=str(tmp_path / "src"), classes=CLASSES, img_suffix=".png",
                            split={"train": "train.txt", "val": "val.txt"})
    assert listed["counts"] == {"train": 3, "val": 1, "test": 1}
    ratio = {"train": 0.6, "val": 0.2, "test": 0.2}

    def assignment(seed: int, name: str) -> dict[str, list[str]]:
        prepare_folder(tmp_path / name, source=str(tmp_path / "src"), classes=CLASSES, img_suffix=".png",
                       split_ratio=ratio, seed=seed)
        return {s: (tmp_path / name / s / "names.txt").read_text().split() for s in ("train", "val", "test")}

    first = assignment(0, "r0")
    assert [len(v) for v in first.values()] == [6, 2, 2]
    assert sorted(sum(first.values(), [])) == sorted(f"n{i}" for i in range(10))
    assert assignment(0, "r0b") == first and assignment(1, "r1") != first


def test_rgb_masks_through_the_palette_and_fixed_size(tmp_path):
    palette = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i, (w, h) in enumerate(ff.SIZES[:2]):
            ff.save(tmp_path / f"src/img_dir/{split}/p{i}.jpg", ff.image(rng, w, h))
            ff.save(tmp_path / f"src/ann_dir/{split}/p{i}.png", np.array(palette, dtype=np.uint8)[
                ff.labels(rng, w, h, 3)])
    meta = prepare_folder(tmp_path / "data", source=str(tmp_path / "src"), classes=CLASSES, palette=palette,
                          size=[8, 6])
    assert meta["palette"] == palette and meta["size"] == [8, 6]
    ds = SegDataset(tmp_path / "data", "train", flip=False)
    image, mask = ds[0]
    assert image.shape == (3, 8, 6) and mask.shape == (8, 6) and set(mask.unique().tolist()) <= {0, 1, 2}
    ff.save(tmp_path / "src/ann_dir/train/p1.png", np.full((12, 16, 3), [0, 255, 0], dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"p1\.png: colour\(s\) \(0, 255, 0\) are not in prepare\.palette"):
        prepare_folder(tmp_path / "data", source=str(tmp_path / "src"), classes=CLASSES, palette=palette)


def test_every_problem_at_once_and_nothing_written(tmp_path):
    src = tmp_path / "src"
    ff.generic(src, names=["ok", "big", "wide"], subdir="train", img_suffix=".png")
    ff.generic(src, names=["v"], subdir="val", img_suffix=".png")
    ff.save(src / "img_dir/train/lonely.png", ff.image(np.random.default_rng(0), 8, 8))
    ff.save(src / "ann_dir/train/orphan.png", np.zeros((8, 8), np.uint8))
    ff.save(src / "ann_dir/train/big.png", np.full((12, 16), 7, np.uint8))        # label 7 with 3 classes
    ff.save(src / "ann_dir/train/wide.png", np.zeros((10, 30), np.uint8))         # its image is 10x14 (w x h)
    (src / "img_dir/val/broken.png").write_bytes(b"not a png")
    ff.save(src / "ann_dir/val/broken.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError) as info:
        prepare_folder(tmp_path / "out" / "data", source=str(src), classes=CLASSES, img_suffix=".png")
    lines = info.value.problems
    expected = [r"img_dir/train/lonely\.png: no annotation", r"ann_dir/train/orphan\.png: no image",
                r"ann_dir/train/big\.png: label values 7 are outside the 3 classes \(0\.\.2\) and not ignore_index "
                r"255", r"ann_dir/train/wide\.png: 30x10 pixels, but its image .*wide\.png is 10x14",
                r"img_dir/val/broken\.png: not a readable image", r"prepare: 5 problem\(s\) in .*; nothing was "
                r"written"]
    assert len(lines) == len(expected), lines
    for pattern in expected:
        assert any(__import__("re").search(pattern, line) for line in lines), (pattern, lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no data dir, no temp dir left behind


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"layout": "voc"}, r"layout 'voc' is not one of ade20k, cityscapes, generic"),
    ({"classes": None}, r"classes: the generic layout needs the class names"),
    ({"split_ratio": {"train": 0.5, "val": 0.2}}, r"split_ratio must hold positive fractions that sum to 1"),
    ({"palette": [[0, 0, 0], [1, 1, 1], [0, 0, 0]]}, r"palette repeats a colour"),
    ({"ignore_index": 1}, r"ignore_index must lie in 3\.\.255"),
])
def test_bad_arguments_name_themselves(tmp_path, kwargs, message):
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match=message):
        prepare_folder(tmp_path / "data", **{"source": str(tmp_path / "src"), "classes": CLASSES, **kwargs})


def test_meta_describes_the_prepared_form(tmp_path):
    for split in ("train", "val"):
        ff.generic(tmp_path / "src", names=["a", "b"], subdir=split, img_suffix=".png")
    prepare_folder(tmp_path / "data", source=str(tmp_path / "src"), classes=CLASSES, img_suffix=".png")
    meta = json.loads((tmp_path / "data" / "meta.json").read_text())
    assert meta["storage"] == "flat" and meta["ignore_index"] == 255 and len(meta["palette"]) == 3
    index = np.load(tmp_path / "data" / "train" / "index.npy")
    assert index.tolist() == [[0, 10, 12], [120, 12, 16]]
    assert np.load(tmp_path / "data" / "train" / "masks.npy").shape == (120 + 192,)
    assert sum(meta["pixel_counts"]["train"]) == 312
    assert Path(meta["source"]) == tmp_path / "src"
