"""One trainer per work dir, through two real `python -m stages.train` processes of the same params."""

from __future__ import annotations

import pytest

from tests.engine.trainer_processes import LONG, prepared_project, start_train, wait_for, work_dir

pytestmark = pytest.mark.slow


def test_second_trainer_of_the_same_params_exits_2_naming_the_holder(tmp_path):
    project = prepared_project(tmp_path, {**LONG, "train_cfg": {"max_iters": 5000, "val_interval": 5000}})
    first, first_log = start_train(project, "first.log")
    try:
        wait_for(first_log, r"Iter\(train\) \[ *1/", first)
        assert (work_dir(project) / "train.lock").read_text() == f"{first.pid}\n"
        second, second_log = start_train(project, "second.log")
        assert second.wait(timeout=240) == 2
        errors = [line for line in second_log.read_text().splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"PID {first.pid}" in errors[0] and "same params" in errors[0], errors
        assert "Traceback" not in second_log.read_text()
        assert first.poll() is None  # the holder is untouched
    finally:
        first.kill()
        first.wait()
    # A killed holder leaves no stale lock: the kernel released it with the process.
    third, third_log = start_train(project, "third.log")
    try:
        wait_for(third_log, r"Iter\(train\) \[ *1/", third)
        assert (work_dir(project) / "train.lock").read_text() == f"{third.pid}\n"
    finally:
        third.kill()
        third.wait()
