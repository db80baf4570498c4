"""SIGTERM/SIGINT through a real `python -m stages.train`: checkpoint at the iteration, run not left RUNNING, the
resumed run ends with the same weights as an uninterrupted one."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

from tests.engine.trainer_processes import prepared_project, run_status, start_train, wait_for, work_dir

pytestmark = pytest.mark.slow


def test_sigterm_checkpoints_and_resume_is_bitwise_equal(tmp_path):
    project = prepared_project(tmp_path, name="stopped")
    proc, log = start_train(project)
    wait_for(log, r"Iter\(train\) \[ *5/", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=240) == 143, log.read_text()
    text = log.read_text()
    (line,) = [line for line in text.splitlines() if line.startswith("interrupted at iteration")]
    found = re.fullmatch(r"interrupted at iteration (\d+); checkpoint saved to (\S+); resume with the same command",
                         line)
    assert found, line
    n = int(found[1])
    assert 5 <= n < 150 and "Traceback" not in text
    checkpoint = project.path / found[2]
    assert checkpoint == work_dir(project) / f"iter_{n}" and (checkpoint / "model.safetensors").is_file()
    assert (work_dir(project) / "last_checkpoint").read_text().strip() == f"iter_{n}"
    assert run_status(project) == "KILLED"
    assert not (project.path / "models" / "model.safetensors").exists()

    again, again_log = start_train(project, "again.log")
    assert again.wait(timeout=300) == 0, again_log.read_text()
    assert f"at iteration {n}" in again_log.read_text()  # resumed, not restarted
    assert run_status(project) == "FINISHED"

    fresh = prepared_project(tmp_path, name="fresh")
    subprocess.run([sys.executable, "-m", "stages.train"], cwd=fresh.path, env=fresh.env, check=True,
                   capture_output=True, timeout=300)
    resumed = load_file(str(project.path / "models" / "model.safetensors"))
    uninterrupted = load_file(str(fresh.path / "models" / "model.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(resumed[k].equal(uninterrupted[k]) for k in resumed)


def test_second_sigint_exits_at_once_without_checkpoint(tmp_path):
    # Slow iterations (bigger images and model) so both signals land inside one of them.
    project = prepared_project(tmp_path, {"train_cfg": {"max_iters": 5000, "val_interval": 5000},
                                          "prepare": {"image_size": 128},
                                          "model": {"base_channels": 32, "num_stages": 3},
                                          "default_hooks": {"checkpoint": {"interval": 5000}}})
    proc, log = start_train(project)
    wait_for(log, r"Iter\(train\) \[ *2/", proc)
    # Both before the loop reaches the next boundary: the handler runs on the main thread between bytecodes.
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two signals before Python's handler ran would count as one
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=120)
    text = log.read_text()
    if "interrupted at iteration" in text:  # the loop won the race: the first signal was acted on already
        assert code in (130, -signal.SIGINT)  # the second one then arrived during or after the orderly exit
        pytest.skip("the iteration finished between the two signals")
    assert code == 130 and "SIGINT received" in text and "exiting now, without a checkpoint" in text
    assert not [p for p in work_dir(project).iterdir() if p.name.startswith("iter_")]
