"""A preset selected with `_base_` under the real `dvc` CLI: included files are dependencies of the stages that read
them (after `trainline dvc-params`), `dvc exp run -S` works on top, and a preset's run is reproducible byte for byte."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import ROOT, TINY, Project, make_project

pytestmark = pytest.mark.slow

# The FCN preset made tiny by overrides in params.yaml (what a user writes to select a preset).
TINY_OVERRIDES = {k: v for k, v in TINY.items() if k != "model"} | {"model": {"base_channels": 4}}
CLI = ("python", "-c", "from engine.cli import main; main()")  # the project copy's own engine


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def preset_project(tmp_path: Path, preset: str) -> Project:
    project = make_project(tmp_path)
    shutil.copytree(ROOT / "configs", project.path / "configs")
    params = {"_base_": f"configs/{preset}.yaml"} | TINY_OVERRIDES
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    stale = project.run(*CLI, "check", check=False)
    assert stale.returncode == 2 and "run `trainline dvc-params`" in stale.stderr
    project.run(*CLI, "dvc-params")
    project.run(*CLI, "check")
    project.commit(f"select {preset}")
    return project


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_included_files_rerun_the_stages_that_read_them(tmp_path: Path) -> None:
    project = preset_project(tmp_path, "fcn_shapes")
    assert ran_stages(project.dvc("repro").stdout) == ["prepare", "train", "eval"]
    project.commit("results")
    assert ran_stages(project.dvc("repro").stdout) == []

    edit(project.path / "configs/_base_/models/fcn.yaml", "dropout: 0.1", "dropout: 0.2")
    assert ran_stages(project.dvc("repro").stdout) == ["train", "eval"]
    edit(project.path / "configs/_base_/datasets/shapes.yaml", "max_objects: 4", "max_objects: 3")
    assert ran_stages(project.dvc("repro").stdout) == ["prepare", "train", "eval"]
    project.commit("edited bases")
    assert ran_stages(project.dvc("repro").stdout) == []

    out = project.dvc("exp", "run", "-S", "optim.lr=0.002")
    assert ran_stages(out.stdout) == ["train", "eval"]
    assert (project.path / "params.yaml").read_text().startswith("_base_: configs/fcn_shapes.yaml")
    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name("trainline-shapes")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.data.params["optim.lr"] == "0.002"
    assert run.data.params["model.type"] == "FCN" and run.data.params["model.dropout"] == "0.2"
    lrs = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train/lr")}
    assert lrs[2] == pytest.approx(0.002, rel=1e-12)  # LinearLR reaches the base lr at its end (iteration 2)


def test_a_preset_reruns_byte_identical(tmp_path: Path) -> None:
    """CPU and deterministic: two fresh copies of one preset write the same metrics/eval.json, byte for byte."""
    texts = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        project = preset_project(tmp_path / name, "unet_shapes")
        assert ran_stages(project.dvc("repro").stdout) == ["prepare", "train", "eval"]
        texts.append((project.path / "metrics/eval.json").read_bytes())
    assert texts[0] == texts[1]
