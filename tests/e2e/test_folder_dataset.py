"""A generic image/annotation folder through `python -m stages.prepare` (SegFolder) and a short training on it."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from tests.e2e.conftest import make_project
from tests.engine.seg import folder_fixtures as ff

pytestmark = pytest.mark.slow


def test_prepare_a_folder_then_train_on_it(tmp_path):
    project = make_project(tmp_path, {
        "prepare": {"type": "SegFolder", "source": "raw", "img_suffix": ".png", "size": 16},
        "data": {"classes": ["bg", "a", "b"]},
    })
    ff.generic(project.path / "raw", names=[f"t{i}" for i in range(8)], subdir="train")
    ff.generic(project.path / "raw", names=["v0", "v1"], subdir="val", seed=1)
    prepared = project.run(sys.executable, "-m", "stages.prepare")
    assert "train: 8" in prepared.stderr and "test: 2" in prepared.stderr  # test reads val
    meta = json.loads((project.path / "data" / "shapes" / "meta.json").read_text())
    assert meta["storage"] == "flat" and meta["aliases"] == {"test": "val"}
    project.run(sys.executable, "-m", "stages.train")
    train = json.loads((project.path / "metrics" / "train.json").read_text())
    assert train, train

    # A sample corrupted after prepare stops a fresh training with one line naming it, exit 2.
    shutil.rmtree(project.path / "work_dirs")
    masks_path = project.path / "data" / "shapes" / "train" / "masks.npy"
    masks = np.load(masks_path)
    masks[:] = 9
    np.save(masks_path, masks)
    failed = project.run(sys.executable, "-m", "stages.train", check=False)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert failed.returncode == 2 and len(errors) == 1, failed.stderr[-3000:]
    assert "train sample" in errors[0] and "labels 9 outside 0..2" in errors[0] and "Traceback" not in failed.stderr
