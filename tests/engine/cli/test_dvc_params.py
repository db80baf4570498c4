"""`trainline dvc-params`: stages list every included file that holds a key they read; the rest of dvc.yaml is kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.cli.dvc_params import dvc_params
from engine.config import parse_yaml
from engine.config.dvc_params import listed_params
from engine.config.dvc_stages import dvc_yaml_problems, unlisted_includes
from engine.errors import ConfigError, UserError
from tests.conftest import ROOT

PRESET = "_base_: configs/fcn_shapes.yaml\noptim:\n  lr: 0.01\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped dvc.yaml and configs/ with a params.yaml that selects the FCN preset and overrides the lr."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copy2(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(PRESET, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def listing(root: Path, stage: str) -> set[tuple[str, str]]:
    doc = parse_yaml((root / "dvc.yaml").read_text(encoding="utf-8"))
    return set(listed_params(doc["stages"][stage]["params"]))


def without_params_blocks(text: str) -> list[str]:
    """dvc.yaml's lines outside the stages' `params:` lists (what dvc-params must leave as it was)."""
    out, inside = [], False
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if inside and line.strip() and indent <= 4:
            inside = False
        if line.strip() == "params:":
            inside = True
        if not inside:
            out.append(line)
    return out


def test_each_stage_lists_the_included_files_that_hold_its_keys(project: Path) -> None:
    before = (project / "dvc.yaml").read_text(encoding="utf-8")
    lines, changed = dvc_params(project / "params.yaml")
    assert changed
    assert "stages.train: + configs/_base_/models/fcn.yaml: model" in lines
    train = listing(project, "train")
    assert ("configs/_base_/models/fcn.yaml", "model") in train
    assert ("params.yaml", "optim") in train  # params.yaml holds optim.lr as written
    assert ("configs/_base_/schedules/schedule_shapes_600.yaml", "optim") in train
    assert ("params.yaml", "model") not in train  # params.yaml does not hold it: DVC would fail
    prepare = listing(project, "prepare")
    assert prepare == {("configs/_base_/datasets/shapes.yaml", k) for k in ("prepare", "data.root", "data.classes")} \
        | {("configs/_base_/default_runtime.yaml", "seed")}
    assert not any(f.endswith("models/fcn.yaml") or f.endswith("schedule_shapes_600.yaml") for f, _ in prepare)
    assert ("configs/_base_/models/fcn.yaml", "model") in listing(project, "eval")
    after = (project / "dvc.yaml").read_text(encoding="utf-8")
    assert without_params_blocks(after) == without_params_blocks(before)
    assert "# Of `dist`, only what changes the weights" in after  # a comment inside a params list moves with its key
    assert unlisted_includes(project / "params.yaml") == []
    assert not [p for p in dvc_yaml_problems(project / "params.yaml") if "params" in p.split(":")[1]]


def test_it_is_idempotent_and_check_says_so(project: Path) -> None:
    result = CliRunner().invoke(main, ["dvc-params", "--check"])
    assert result.exit_code == 1 and "run `trainline dvc-params`" in result.output
    assert CliRunner().invoke(main, ["dvc-params"]).exit_code == 0
    text = (project / "dvc.yaml").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["dvc-params", "--check"])
    assert result.exit_code == 0 and "dvc.yaml is up to date" in result.output
    assert dvc_params(project / "params.yaml") == ([], False)
    assert (project / "dvc.yaml").read_text(encoding="utf-8") == text


def test_check_and_the_stage_refuse_a_stale_listing(project: Path) -> None:
    problems = unlisted_includes(project / "params.yaml", stage="train")
    assert any(p.startswith("dvc.yaml: stages.train reads model from configs/_base_/models/fcn.yaml without "
                            "listing") and "DVC would not rerun train when configs/_base_/models/fcn.yaml changes; "
               "run `trainline dvc-params`" in p for p in problems)
    assert not any("models/fcn.yaml" in p for p in unlisted_includes(project / "params.yaml", stage="prepare"))
    from engine.pipeline.start import _refuse_stale_dvc_yaml

    with pytest.raises(ConfigError) as caught:
        _refuse_stale_dvc_yaml("params.yaml", "train")
    assert any("configs/_base_/models/fcn.yaml" in p for p in caught.value.problems)
    dvc_params(project / "params.yaml")
    _refuse_stale_dvc_yaml("params.yaml", "train")  # up to date: starts


def test_a_key_added_to_params_yaml_needs_a_new_listing(project: Path) -> None:
    dvc_params(project / "params.yaml")
    (project / "params.yaml").write_text(PRESET + "model:\n  dropout: 0.2\n", encoding="utf-8")  # `-S +model.dropout`
    problems = unlisted_includes(project / "params.yaml")
    assert any("stages.train reads model from params.yaml without listing params.yaml" in p for p in problems)
    dvc_params(project / "params.yaml")
    assert ("params.yaml", "model") in listing(project, "train")


def test_switching_back_to_a_plain_params_file_restores_the_plain_listing(project: Path) -> None:
    shipped = (ROOT / "dvc.yaml").read_text(encoding="utf-8")
    dvc_params(project / "params.yaml")
    shutil.copy2(ROOT / "params.yaml", project / "params.yaml")
    dvc_params(project / "params.yaml")
    original = set(listed_params(parse_yaml(shipped)["stages"]["train"]["params"]))
    assert listing(project, "train") == original
    assert listing(project, "prepare") == set(listed_params(parse_yaml(shipped)["stages"]["prepare"]["params"]))


def test_other_files_a_stage_lists_are_left_alone(project: Path) -> None:
    text = (project / "dvc.yaml").read_text(encoding="utf-8")
    text = text.replace("      - data.classes\n", "      - data.classes\n      # the user's own\n"
                                                   "      - extra.json:\n          - threshold\n      - whole.yaml:\n")
    (project / "dvc.yaml").write_text(text, encoding="utf-8")
    (project / "extra.json").write_text('{"threshold": 1}', encoding="utf-8")
    (project / "whole.yaml").write_text("anything: 1\n", encoding="utf-8")
    dvc_params(project / "params.yaml")
    after = (project / "dvc.yaml").read_text(encoding="utf-8")
    assert "      # the user's own\n      - extra.json:\n          - threshold\n      - whole.yaml:\n" in after
    assert ("extra.json", "threshold") in listing(project, "prepare")


def test_a_key_no_file_holds_is_named_and_dropped(project: Path) -> None:
    text = (project / "dvc.yaml").read_text(encoding="utf-8").replace("      - data.classes\n",
                                                                      "      - data.classes\n      - data.pin_memory\n")
    (project / "dvc.yaml").write_text(text, encoding="utf-8")
    lines, _ = dvc_params(project / "params.yaml")
    assert any(line.startswith("note: stages.prepare reads data.pin_memory, which no file") for line in lines)
    assert not any(k == "data.pin_memory" for _, k in listing(project, "prepare"))


def test_flow_style_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("optim: {lr: 1}\nmodel: {type: A}\n", encoding="utf-8")
    (tmp_path / "params.yaml").write_text("_base_: base.yaml\nmodel: {depth: 2}\n", encoding="utf-8")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: 'true'  # keep me\n    params: [optim, model]\n",
                                       encoding="utf-8")
    dvc_params(tmp_path / "params.yaml")
    assert (tmp_path / "dvc.yaml").read_text(encoding="utf-8") == (
        "stages:\n  s:\n    cmd: 'true'  # keep me\n    params:\n      - model\n      - base.yaml:\n"
        "          - optim\n          - model\n")


def test_an_include_outside_the_project_cannot_be_tracked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outside.yaml").write_text("optim: {lr: 1}\n", encoding="utf-8")
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    (root / "params.yaml").write_text("_base_: ../outside.yaml\n", encoding="utf-8")
    (root / "dvc.yaml").write_text("stages:\n  s:\n    cmd: 'true'\n    params: [optim]\n", encoding="utf-8")
    with pytest.raises(UserError, match="outside the project"):
        dvc_params(root / "params.yaml")
    assert any("outside.yaml (through `_base_`) from outside the project" in p
               for p in unlisted_includes(root / "params.yaml", stage="s"))
