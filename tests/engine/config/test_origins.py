"""Where each resolved value came from: origins tracked through `_base_` merging, and `check --print --origin`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.config import load_params, parse_yaml
from engine.config.origins import dump_with_origins, origin_of
from engine.config.validate import resolve
from engine.config.yaml_io import load_params_with_origins

ROOT = Path(__file__).resolve().parents[3]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """params.yaml -> preset.yaml -> [bases/model.yaml, bases/sched.yaml], a nested base under the model one."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "bases/inner.yaml", "model: {type: UNet, depth: 4, extra: {a: 1, b: 2}}\n")
    write(tmp_path / "bases/model.yaml", "_base_: inner.yaml\nmodel: {depth: 5, extra: {b: 3}}\n")
    write(tmp_path / "bases/sched.yaml", "optim: {type: SGD, lr: 0.01, momentum: 0.9}\n"
                                         "param_scheduler: [{type: PolyLR, power: 0.9}]\n"
                                         "data: {dataset: {type: SegDataset, flip: true}, batch_size: 4}\n")
    write(tmp_path / "preset.yaml", "_base_: [bases/model.yaml, bases/sched.yaml]\n"
                                    "optim: {_delete_: true, type: AdamW, lr: 0.001}\n"
                                    "param_scheduler: [{type: LinearLR, end: 5}]\n")
    return write(tmp_path / "params.yaml", "_base_: preset.yaml\noptim: {lr: 0.002}\n"
                                           "data: {dataset: {_delete_: true, type: Other}, batch_size: 8}\n")


def test_origins_follow_nested_bases(tree: Path) -> None:
    _, origins = load_params_with_origins(tree)
    assert origins[("model", "type")] == "bases/inner.yaml"
    assert origins[("model", "extra", "a")] == "bases/inner.yaml"
    assert origins[("model", "depth")] == "bases/model.yaml"
    assert origins[("model", "extra", "b")] == "bases/model.yaml"


def test_delete_drops_the_base_origins(tree: Path) -> None:
    cfg, origins = load_params_with_origins(tree)
    assert cfg["optim"] == {"type": "AdamW", "lr": 0.002}
    assert origins[("optim", "type")] == "preset.yaml"
    assert origins[("optim", "lr")] == "params.yaml"
    assert ("optim", "momentum") not in origins  # deleted with the SGD mapping
    assert origins[("data", "dataset", "type")] == "params.yaml"
    assert ("data", "dataset", "flip") not in origins
    assert origins[("data", "batch_size")] == "params.yaml"


def test_a_list_replaces_and_is_one_origin(tree: Path) -> None:
    cfg, origins = load_params_with_origins(tree)
    assert cfg["param_scheduler"] == [{"type": "LinearLR", "end": 5}]
    assert origins[("param_scheduler",)] == "preset.yaml"
    assert not [p for p in origins if p[0] == "param_scheduler" and len(p) > 1]


def test_tracking_leaves_the_merge_unchanged(tree: Path) -> None:
    cfg, origins = load_params_with_origins(tree)
    assert cfg == load_params(tree)
    # Every leaf of the merged config has exactly one origin, and no origin names a value that is not there.
    leaves = set()

    def walk(node: object, path: tuple[str, ...]) -> None:
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, path + (k,))
        else:
            leaves.add(path)

    walk(cfg, ())
    assert leaves == set(origins)


def test_a_replaced_mapping_and_an_empty_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "base.yaml", "model: {type: A, n: 1}\ncustom_hooks: [{type: H}]\noptim: {}\n")
    params = write(tmp_path / "params.yaml", "_base_: base.yaml\nmodel: null\ncustom_hooks: []\noptim: {lr: 1}\n")
    cfg, origins = load_params_with_origins(params)
    assert cfg == {"model": None, "custom_hooks": [], "optim": {"lr": 1}}
    assert origins == {("model",): "params.yaml", ("custom_hooks",): "params.yaml", ("optim", "lr"): "params.yaml"}


def test_defaults_are_named_default(tree: Path) -> None:
    cfg, origins = load_params_with_origins(tree)
    resolved = resolve(cfg)
    assert origin_of(origins, ("train_cfg", "val_interval")) == "default"
    assert origin_of(origins, ("param_scheduler",)) == "preset.yaml"
    text = dump_with_origins(resolved, origins)
    assert parse_yaml(text) == resolved  # the annotated text is still the resolved config
    assert "  lr: 0.002  # from params.yaml" in text.splitlines()
    assert "  momentum" not in text


def test_check_print_origin_on_a_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = CliRunner().invoke(main, ["check", "--print", "--origin", "--params", "configs/fcn_shapes.yaml"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "  type: FCN  # from configs/_base_/models/fcn.yaml" in lines
    assert "  lr: 0.005  # from configs/_base_/schedules/schedule_shapes_600.yaml" in lines
    assert "  pin_memory: false  # from default" in lines
    assert parse_yaml(result.output) == parse_yaml(CliRunner().invoke(
        main, ["check", "--print", "--params", "configs/fcn_shapes.yaml"]).output)
