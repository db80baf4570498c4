"""docs/baselines.*: the recorded figures came from the presets as shipped, and the page shows the recorded runs."""

from __future__ import annotations

import json
import statistics

import pytest

from benchmarks import baselines
from tests.conftest import ROOT

RECORD = json.loads(baselines.JSON_PATH.read_text(encoding="utf-8"))


def test_some_presets_are_recorded_with_three_seeds() -> None:
    assert RECORD["presets"]
    for name, entry in RECORD["presets"].items():
        assert [r["seed"] for r in entry["runs"]] == list(baselines.SEEDS), name


@pytest.mark.parametrize("name", sorted(RECORD["presets"]))
def test_the_figures_came_from_the_shipped_preset(name: str) -> None:
    """Each seed's params_hash is the current hash of configs/<name>.yaml with that seed: change a preset (or what
    the hash covers) and its figures must be measured again (`python benchmarks/baselines.py --presets NAME`)."""
    assert (ROOT / "configs" / f"{name}.yaml").is_file()
    for run in RECORD["presets"][name]["runs"]:
        assert baselines.preset_hash(name, run["seed"]) == run["params_hash"], (name, run["seed"])


@pytest.mark.parametrize("name", sorted(RECORD["presets"]))
def test_the_summary_is_that_of_the_runs(name: str) -> None:
    entry = RECORD["presets"][name]
    mious = [r["mIoU"] for r in entry["runs"]]
    assert entry["summary"]["mIoU_mean"] == pytest.approx(statistics.mean(mious))
    assert entry["summary"]["mIoU_std"] == pytest.approx(statistics.stdev(mious))
    assert entry["summary"]["cpu_s_mean"] == pytest.approx(statistics.mean(r["cpu_s"] for r in entry["runs"]))


def test_the_page_is_rendered_from_the_record() -> None:
    assert baselines.MD_PATH.read_text(encoding="utf-8") == baselines.render(RECORD)


def test_the_selection_is_what_docs_presets_tells_a_user_to_write() -> None:
    text = baselines.selection_params("fcn_shapes", 43)
    assert text == "_base_: configs/fcn_shapes.yaml\nseed: 43\n"
    assert "_base_: configs/fcn_shapes.yaml" in (ROOT / "docs" / "presets.md").read_text(encoding="utf-8")
