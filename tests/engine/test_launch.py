"""The `dist` section: what `trainline check` refuses, the accelerate launch flags it becomes (the CPU trap), the
rendezvous taken from Slurm's environment, and the params hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.config.schema import training_hash
from engine.launch import launcher_flags, needs_launch, rendezvous, world_size
from tests.engine.config.test_validate import check, problems

SLURM = {"SLURM_PROCID": "1", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "node7"}


def dist(**values: Any) -> dict[str, Any]:
    return {"dist": values}


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "ACCELERATE_MIXED_PRECISION", *SLURM):
        monkeypatch.delenv(name, raising=False)


def test_dist_problems_are_reported_at_once_with_their_key_paths(tmp_path: Path) -> None:
    bad = tmp_path / "acc.yaml"
    bad.write_text("num_processes: [2\n")
    found = problems(dist(num_processes=0, num_machines=2, machine_rank=2, main_process_port=70000,
                          backend="glue", timeout=0, config_file=str(bad)))
    text = "\n".join(found)
    for key in ("dist.num_processes: must be at least 1", "dist.machine_rank: must be 0 .. dist.num_machines - 1",
                "dist.main_process_port: must be a TCP port", "dist.backend: 'glue' is not allowed",
                "dist.timeout: must be at least 1", "dist.config_file:"):
        assert key in text, text


def test_several_machines_need_the_address_of_machine_0_outside_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    assert any(p.startswith("dist.main_process_ip: required") for p in problems(dist(num_processes=2,
                                                                                      num_machines=2)))
    assert any("do not split evenly" in p for p in problems(dist(num_processes=3, num_machines=2,
                                                                 main_process_ip="10.0.0.1")))
    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    check(dist(num_processes=2, num_machines=2))


def test_missing_config_file_is_a_check_problem(tmp_path: Path) -> None:
    (problem,) = [p for p in problems(dist(config_file=str(tmp_path / "none.yaml"))) if p.startswith("dist.")]
    assert "cannot be read" in problem


def test_cpu_processes_are_started_with_multi_gpu_not_cpu() -> None:
    # `--cpu --num_processes 2` would silently start one process (huggingface/accelerate#2741).
    cfg, _ = check(dist(num_processes=2, main_process_port=29511))
    flags = launcher_flags(cfg)
    assert "--cpu" not in flags and "--multi_gpu" in flags
    assert flags[flags.index("--num_processes") + 1] == "2" and flags[flags.index("--main_process_port") + 1] == "29511"
    assert needs_launch(cfg)


def test_a_launched_worker_does_not_launch_again(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, _ = check(dist(num_processes=2))
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert not needs_launch(cfg)
    assert not needs_launch(check()[0])


def test_rendezvous_left_null_comes_from_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr("engine.launch.shutil.which", lambda name: None)
    cfg, _ = check(dist(num_processes=4, num_machines=2))
    assert rendezvous(cfg) == {"machine_rank": 1, "main_process_ip": "node7", "main_process_port": 24242}
    flags = launcher_flags(cfg)
    assert flags[flags.index("--machine_rank") + 1] == "1" and flags[flags.index("--main_process_ip") + 1] == "node7"


def test_the_params_hash_follows_the_process_count_not_the_rendezvous(tmp_path: Path) -> None:
    one = training_hash(check()[0])
    assert training_hash(check(dist(num_processes=1, main_process_port=1234, timeout=60))[0]) == one
    two = training_hash(check(dist(num_processes=2))[0])
    assert two != one
    assert training_hash(check(dist(num_processes=2, num_machines=2, main_process_ip="h", backend="gloo"))[0]) == two
    config = tmp_path / "acc.yaml"
    config.write_text("distributed_type: MULTI_GPU\nnum_processes: 2\n")
    cfg, _ = check(dist(config_file=str(config)))
    assert world_size(cfg) == 2 and training_hash(cfg) == two
