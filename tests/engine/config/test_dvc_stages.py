"""dvc.yaml problems that `trainline check` reports before `dvc repro` would: listed params the file lacks as
written, dependencies that nothing provides."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config.dvc_stages import dvc_yaml_problems
from tests.conftest import ROOT

DVC = str(Path(sys.executable).parent / "dvc")
TRAINLINE = str(Path(sys.executable).parent / "trainline")


def write(root: Path, dvc_yaml: str, params: str = "lr: 0.1\nnested: {a: 1}\nlist: [{end: 3}]\n") -> Path:
    (root / "dvc.yaml").write_text(dvc_yaml, encoding="utf-8")
    (root / "params.yaml").write_text(params, encoding="utf-8")
    return root / "params.yaml"


def test_the_shipped_dvc_yaml_has_no_problems() -> None:
    assert dvc_yaml_problems(ROOT / "params.yaml") == []


def test_listed_params_must_be_written_in_the_file(tmp_path: Path) -> None:
    params = write(tmp_path, "stages:\n  s:\n    cmd: 'true'\n    params: [lr, nested.a, list.0.end, nested.b,"
                             " list.1.end, {params.yaml: [gone]}, {other.yaml: [elsewhere]}]\n")
    problems = dvc_yaml_problems(params)
    assert [p.split(" lists ")[1].split(",")[0] for p in problems] == ["nested.b", "list.1.end", "gone"]
    assert all(p.startswith("dvc.yaml: stages.s.params lists ") for p in problems)


def test_base_files_are_invisible_to_dvc(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("seed: 1\n", encoding="utf-8")
    params = write(tmp_path, "stages:\n  s:\n    cmd: 'true'\n    params: [seed]\n", "_base_: base.yaml\n")
    assert "not its _base_ or defaults" in dvc_yaml_problems(params)[0]


def test_deps_must_exist_or_be_written_by_a_stage(tmp_path: Path) -> None:
    (tmp_path / "code.py").write_text("", encoding="utf-8")
    params = write(tmp_path, "stages:\n  a:\n    cmd: 'true'\n    outs: [data/out]\n"
                             "    metrics: [{m.json: {cache: false}}]\n  b:\n    cmd: 'true'\n"
                             "    deps: [code.py, data/out, data/out/part, m.json, missing.py]\n")
    assert dvc_yaml_problems(params) == [
        "dvc.yaml: stages.b.deps: missing.py does not exist and no stage writes it, so `dvc repro` would fail; "
        "create it or drop it from the stage"]


def test_a_params_file_dvc_does_not_read_is_not_judged(tmp_path: Path) -> None:
    write(tmp_path, "stages:\n  s:\n    cmd: 'true'\n    params: [absent]\n")
    other = tmp_path / "other.yaml"
    other.write_text("lr: 1\n", encoding="utf-8")
    assert dvc_yaml_problems(other) == []
    assert dvc_yaml_problems(tmp_path / "sub" / "params.yaml") == []  # no dvc.yaml beside it


@pytest.mark.slow
def test_check_refuses_what_dvc_repro_refuses(tmp_path: Path) -> None:
    """The real `dvc repro` fails on a missing listed param; check names the same key first."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    write(tmp_path, "stages:\n  s:\n    cmd: echo ran > out.txt\n    params: [lr, nested.b]\n    outs: [out.txt]\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([DVC, "init", "-q"], cwd=tmp_path, check=True, env=env)
    repro = subprocess.run([DVC, "repro"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert repro.returncode != 0 and "nested.b" in repro.stdout + repro.stderr
    assert not (tmp_path / "out.txt").exists()
    # The params file holds only a few keys, so check also refuses its sections; the dvc.yaml line is among them.
    check = subprocess.run([TRAINLINE, "check"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert check.returncode == 2 and "Traceback" not in check.stderr
    assert "error: dvc.yaml: stages.s.params lists nested.b" in check.stderr


def _uncached_plain_outs(dvc_yaml_text: str) -> list[str]:
    import yaml

    found = []
    for name, stage in (yaml.safe_load(dvc_yaml_text)["stages"]).items():
        for out in stage.get("outs", []):
            if isinstance(out, dict) and any(v.get("cache") is False for v in out.values()):
                found.append(f"{name}: {next(iter(out))}")
    return found


def test_every_stage_can_come_back_from_the_run_cache() -> None:
    """DVC skips its run-cache for a stage with any `cache: false` plain output (metrics and plots are exempt): the
    shipped dvc.yaml and the one `trainline init` writes have none."""
    from engine.cli.init_project import _DVC, _PREPARE_STAGE

    assert _uncached_plain_outs((ROOT / "dvc.yaml").read_text()) == []
    prepare = _PREPARE_STAGE.format(deps="      - x\n", root="data")
    template = _DVC.format(prepare_stage=prepare, train_deps="      - data\n", eval_deps="      - data\n")
    assert _uncached_plain_outs(template) == []
