"""The shipped params.yaml, unchanged, through `dvc repro`: the example reaches test mIoU >= 90."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import make_project

pytestmark = pytest.mark.slow


def test_default_params_reach_miou_90(tmp_path):
    project = make_project(tmp_path, tiny=False)
    project.dvc("repro")
    result = json.loads((project.path / "metrics/eval.json").read_text())
    assert result["split"] == "test"
    assert result["mIoU"] >= 90, result
    assert all(scores["IoU"] >= 80 for scores in result["per_class"].values()), result["per_class"]
