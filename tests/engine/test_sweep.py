"""The `trainline.sweep` tag: the same for every point of one DVC grid, different for another grid or baseline."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from engine.sweep import changed_keys, sweep_tag

BASELINE = "optim:\n  lr: 0.005\n  weight_decay: 0.0001\n  betas: [0.9, 0.999]\ntrain_cfg:\n  max_iters: 6\n"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text(BASELINE)
    git(tmp_path, "add", "params.yaml")
    git(tmp_path, "commit", "-qm", "baseline")
    return tmp_path / "params.yaml", git(tmp_path, "rev-parse", "HEAD")


def as_dvc_writes(params: Path, lr: str, wd: str) -> None:
    """params.yaml as `dvc exp run -S optim.lr=.. -S optim.weight_decay=..` leaves it (repr floats, block lists)."""
    params.write_text(f"optim:\n  lr: {lr}\n  weight_decay: {wd}\n  betas:\n  - 0.9\n  - 0.999\n"
                      "train_cfg:\n  max_iters: 6\n")


def test_changed_keys_are_dotted_and_include_added_and_removed():
    assert changed_keys({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"b": 2, "c": [1, 3]}, "e": 1}) == [
        "a.b", "a.c.1", "d", "e"]
    assert changed_keys({"lr": 6e-05}, {"lr": 0.00006}) == []


def test_every_point_of_a_grid_shares_one_tag(repo):
    params, rev = repo
    env = {"DVC_EXP_BASELINE_REV": rev, "DVC_EXP_NAME": "fuzzy-bats"}
    tags = set()
    for lr in ("0.001", "0.003"):
        for wd in ("0", "1e-05"):
            as_dvc_writes(params, lr, wd)
            tags.add(sweep_tag(env, params))
    assert tags == {f"{rev[:7]}:optim.lr,optim.weight_decay"}


def test_another_grid_or_baseline_gets_another_tag(repo):
    params, rev = repo
    as_dvc_writes(params, "0.001", "0.0001")  # only the lr varies
    assert sweep_tag({"DVC_EXP_BASELINE_REV": rev}, params) == f"{rev[:7]}:optim.lr"
    git(params.parent, "commit", "-qam", "new baseline")
    new_rev = git(params.parent, "rev-parse", "HEAD")
    as_dvc_writes(params, "0.002", "0.0001")
    assert sweep_tag({"DVC_EXP_BASELINE_REV": new_rev}, params) == f"{new_rev[:7]}:optim.lr"


def test_a_named_grid_is_grouped_by_its_name(repo):
    """A grid point repeating the baseline's value would change fewer keys; naming the grid groups by name."""
    params, rev = repo
    as_dvc_writes(params, "0.001", "0.0001")
    assert sweep_tag({"DVC_EXP_BASELINE_REV": rev, "DVC_EXP_NAME": "lr-wd-3"}, params) == f"{rev[:7]}:lr-wd"
    as_dvc_writes(params, "0.005", "0.0001")
    assert sweep_tag({"DVC_EXP_BASELINE_REV": rev, "DVC_EXP_NAME": "fuzzy-bats"}, params) == f"{rev[:7]}:baseline"


def test_no_tag_outside_dvc_exp_run_or_without_the_baseline(repo, tmp_path):
    params, rev = repo
    assert sweep_tag({}, params) is None  # `dvc repro`, `trainline train`
    assert sweep_tag({"DVC_EXP_BASELINE_REV": "0" * 40}, params) is None  # commit not in this clone
    assert sweep_tag({"DVC_EXP_BASELINE_REV": rev}, tmp_path / "other.yaml") is None
