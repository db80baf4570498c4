"""Reader checks of the prepared data: truncated arrays and out-of-range labels as one line naming the file and
sample, in the dataset, through a DataLoader worker, and in `trainline check`."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from engine.cli import main
from engine.seg.dataset import SegDataset
from engine.seg.prepared import PreparedDataError, check_labels, open_npy
from engine.seg.synthetic import generate_dataset
from tests.conftest import SHIPPED


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "data"
    generate_dataset(out, seed=0, image_size=16, num_train=4, num_val=2, num_test=2)
    return out


@pytest.fixture
def root(source, tmp_path):
    copy = tmp_path / "data"
    shutil.copytree(source, copy)
    return copy


def test_truncated_array_names_the_file_the_sizes_and_the_fix(root):
    path = root / "train" / "images.npy"
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 100)
    with pytest.raises(PreparedDataError, match=rf"data\.root: {path} is {size - 100} bytes, but its header describes "
                       rf"a 4x16x16x3 uint8 array of {size} bytes \(the file is truncated\); rerun the prepare stage "
                       r"\(`dvc repro prepare`\)"):
        SegDataset(root, "train")


def test_not_an_array_and_wrong_dtype(root, tmp_path):
    (root / "val" / "masks.npy").write_bytes(b"garbage")
    with pytest.raises(PreparedDataError, match=r"masks\.npy is not a readable \.npy array"):
        SegDataset(root, "val")
    np.save(tmp_path / "f.npy", np.zeros((2, 2), np.float32))
    with pytest.raises(PreparedDataError, match=r"holds a 2x2 float32 array, expected 1 dimensions of uint8"):
        open_npy(tmp_path / "f.npy", dtype=np.uint8, ndim=1)


def test_out_of_range_label_names_split_sample_and_range(root):
    masks = np.load(root / "val" / "masks.npy")
    masks[1, 3, 3] = 9
    np.save(root / "val" / "masks.npy", masks)
    ds = SegDataset(root, "val")
    ds[0]  # untouched samples still read
    with pytest.raises(PreparedDataError, match=r"val/masks\.npy, val sample 1: labels 9 outside 0\.\.3 \(4 "
                       r"classes, 255 = ignore\).*dvc repro prepare"):
        ds[1]


def test_ignore_label_passes_and_the_check_is_cheap():
    mask = np.zeros((4, 4), np.uint8)
    mask[0] = 255
    check_labels(mask, 4, 255, "x")
    mask[1, 1] = 200
    with pytest.raises(PreparedDataError, match=r"labels 200 outside"):
        check_labels(mask, 4, 255, "x")


def test_a_loader_worker_still_gives_one_line(root):
    masks = np.load(root / "train" / "masks.npy")
    masks[0, 0, 0] = 7
    np.save(root / "train" / "masks.npy", masks)
    loader = torch.utils.data.DataLoader(SegDataset(root, "train", flip=False), batch_size=2, num_workers=1)
    with pytest.raises(PreparedDataError) as info:
        next(iter(loader))
    assert str(info.value).startswith("data.root: ") and "\n" not in str(info.value)
    assert "train sample 0: labels 7 outside 0..3" in str(info.value)


def test_trainline_check_reports_a_truncated_array(root, tmp_path):
    with open(root / "test" / "masks.npy", "r+b") as fh:
        fh.truncate(200)
    params = tmp_path / "params.yaml"
    params.write_text(SHIPPED.read_text().replace("root: data/shapes", f"root: {root}"))
    result = CliRunner().invoke(main, ["check", "--params", str(params)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: data.root: {root / 'test' / 'masks.npy'} is 200 bytes")
    assert "Traceback" not in result.output
