"""A trainer whose `dvc repro` was SIGKILLed stops as if it had been sent SIGTERM: checkpoint, run ended, exit."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.e2e.conftest import BIN
from tests.engine.trainer_processes import LONG, prepared_project, run_status, wait_for, work_dir

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] != "Z"


def test_trainer_stops_when_dvc_is_killed(tmp_path):
    project = prepared_project(tmp_path, {**LONG, "train_cfg": {"max_iters": 5000, "val_interval": 5000}})
    log = project.path / "dvc.log"
    with open(log, "w") as out:
        dvc = subprocess.Popen([str(BIN / "dvc"), "repro", "train"], cwd=project.path, env=project.env, stdout=out,
                               stderr=subprocess.STDOUT)
    try:
        wait_for(log, r"Iter\(train\) \[ *3/", dvc)
        trainer = int((work_dir(project) / "train.lock").read_text())
        dvc.send_signal(signal.SIGKILL)
        dvc.wait()
        deadline = time.monotonic() + 120
        while _alive(trainer) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(trainer), "the trainer kept running after dvc was killed"
    finally:
        if dvc.poll() is None:
            dvc.kill()
    text = log.read_text()
    assert "that started this stage is gone" in text and "interrupted at iteration" in text, text
    assert any(p.name.startswith("iter_") for p in work_dir(project).iterdir())
    assert run_status(project) == "KILLED"
