"""SegDataset: tensor layout, normalisation, reproducible flips and the missing-data error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.seg.dataset import SegDataset
from engine.seg.synthetic import generate_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "data"
    generate_dataset(out, seed=0, image_size=32, num_train=16, num_val=4, num_test=4)
    return out


def test_item_layout_and_normalisation(root):
    ds = SegDataset(root, "val")
    assert len(ds) == 4 and ds.meta["counts"]["val"] == 4
    image, mask = ds[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    raw = np.load(root / "val" / "images.npy")[1].astype(np.float32)
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    np.testing.assert_allclose(image.permute(1, 2, 0).numpy(), (raw - mean) / std, rtol=1e-5, atol=1e-5)
    assert torch.equal(mask, torch.from_numpy(np.load(root / "val" / "masks.npy")[1]).long())


def test_flips_are_reproducible_and_follow_epoch(root):
    plain = SegDataset(root, "train", flip=False)
    a = SegDataset(root, "train", seed=7)
    b = SegDataset(root, "train", seed=7)

    def flips(ds):
        out = []
        for i in range(len(ds)):
            image, mask = ds[i]
            ref_image, ref_mask = plain[i]
            flipped = torch.equal(mask, ref_mask.flip(-1)) and torch.equal(image, ref_image.flip(-1))
            assert flipped or (torch.equal(mask, ref_mask) and torch.equal(image, ref_image))
            out.append(flipped)
        return out

    first = flips(a)
    assert first == flips(b) and 0 < sum(first) < len(first)
    a.set_epoch(1)
    assert flips(a) != first
    a.set_epoch(0)
    assert flips(a) == first


def test_missing_files_say_how_to_fix(tmp_path, root):
    with pytest.raises(FileNotFoundError, match=r"meta\.json.*dvc repro prepare"):
        SegDataset(tmp_path, "train")
    with pytest.raises(ValueError, match=r"split must be train, val or test, got 'nope'"):
        SegDataset(root, "nope")


def test_only_the_train_split_is_flipped(root):
    assert SegDataset(root, "train").augment and not SegDataset(root, "val").augment
    assert not SegDataset(root, "test", flip=True).augment
