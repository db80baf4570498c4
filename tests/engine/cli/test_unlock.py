"""`trainline unlock` through the real command: stale DVC rwlock entries go, live ones stay, `dvc repro` unblocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def trainline_unlock(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "trainline"), "unlock"], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=120)


def dead_pid() -> int:
    """A PID whose process has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def zombie() -> Iterator[int]:
    """A child that has exited but is not reaped yet: its PID still exists (as after a kill in a container whose
    init does not reap), which is what keeps DVC blocked."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(200):
        if Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0] == "Z":
            break
        time.sleep(0.02)
    yield child.pid
    child.wait()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child
    child.kill()
    child.wait()


def entry(pid: int) -> dict:
    return {"pid": pid, "cmd": f"dvc repro (pid {pid})"}


def write_lock(root: Path, lock: dict) -> Path:
    path = root / ".dvc" / "tmp" / "rwlock"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lock))
    return path


def test_removes_dead_and_zombie_holders_keeps_live_ones(tmp_path, zombie, sleeper):
    dead, me = dead_pid(), os.getpid()
    path = write_lock(tmp_path, {
        "write": {"/p/a": entry(dead), "/p/b": entry(me), "/p/z": entry(zombie)},
        "read": {"/p/a": [entry(dead), entry(sleeper.pid)], "/p/c": [entry(dead)]},
    })
    (tmp_path / "sub").mkdir()
    result = trainline_unlock(tmp_path / "sub")  # the project root is found from below
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("removed ") for line in lines)
    assert sum(f"PID {dead} " in line for line in lines) == 3 and sum(f"PID {zombie} " in line for line in lines) == 1
    assert json.loads(path.read_text()) == {"write": {"/p/b": entry(me)}, "read": {"/p/a": [entry(sleeper.pid)]}}

    again = trainline_unlock(tmp_path)
    assert (again.returncode, again.stdout) == (0, "nothing to unlock\n")
    assert json.loads(path.read_text()) == {"write": {"/p/b": entry(me)}, "read": {"/p/a": [entry(sleeper.pid)]}}


def test_a_reused_pid_is_not_the_holder(tmp_path, sleeper):
    """A live process that started after the lock file was written cannot hold it (the PID was reused); one that
    started before (PID 1, at boot) can."""
    path = write_lock(tmp_path, {"write": {"/p/a": entry(sleeper.pid)}, "read": {"/p/b": [entry(1)]}})
    import psutil

    # Written just before the sleeper started and long after PID 1 did (however recently the machine booted).
    written = psutil.Process(sleeper.pid).create_time() - 5
    assert psutil.Process(1).create_time() < written - 1
    os.utime(path, (written, written))
    result = trainline_unlock(tmp_path)
    assert result.returncode == 0 and f"PID {sleeper.pid} " in result.stdout
    assert json.loads(path.read_text()) == {"read": {"/p/b": [entry(1)]}}


def test_no_lock_file_and_no_project(tmp_path):
    (tmp_path / ".dvc").mkdir()
    assert trainline_unlock(tmp_path).stdout == "nothing to unlock\n"
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    result = trainline_unlock(outside)
    assert result.returncode == 2 and "not inside a DVC project" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_lock_is_one_line(tmp_path):
    path = write_lock(tmp_path, {})
    path.write_text("{not json")
    result = trainline_unlock(tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not valid JSON" in result.stderr
    assert path.read_text() == "{not json"


@pytest.mark.slow
def test_dvc_repro_blocked_by_a_stale_lock_runs_after_unlock(tmp_path, zombie):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)

    run("git", "init", "-q")
    run(str(BIN / "dvc"), "init", "-q")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    out = str(tmp_path / "out.txt")
    # What a `dvc repro` killed in its stage leaves, naming a process that is gone but whose PID still exists.
    write_lock(tmp_path, {"write": {out: entry(zombie)}, "read": {out: [entry(zombie)]}})
    blocked = run(str(BIN / "dvc"), "repro")
    assert blocked.returncode != 0 and "is busy, it is being blocked by" in blocked.stderr + blocked.stdout
    assert not (tmp_path / "out.txt").exists()

    assert trainline_unlock(tmp_path).stdout.count("removed ") == 2
    done = run(str(BIN / "dvc"), "repro")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.txt").read_text() == "hi\n"
