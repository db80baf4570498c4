"""SIGKILL through the real processes: a trainer killed at seeded random points (between two checkpoints, inside a
checkpoint write, right after a checkpoint) and rerun until it completes ends exactly like an uninterrupted run: the
final weights, metrics/train.json, every logged metric series in MLflow (each step once) and the JSON-lines scalars
log of the work dir, bit for bit. Also two processes killed as a whole, and `dvc repro` killed, then unlocked and
rerun.

The window inside a checkpoint write is made observable by the engine's test-only slow-write variable (announced in
the log), so that kill lands there by design, not by luck.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from engine.checkpoint import SLOW_WRITE_ENV
from tests.e2e.conftest import BIN, Project, make_project

pytestmark = pytest.mark.slow

TOYS = Path(__file__).resolve().parents[1] / "toys"
SEED = 20240607  # the kill points are drawn from random.Random(f"{SEED}:{variant}")
PAUSE = "1.5"  # seconds a slowed checkpoint write stays between its weights and its state
TIMING = ("train/time", "train/data_time", "train/throughput")  # wall-clock: the only logged values allowed to differ
TRAIN = (sys.executable, "-m", "stages.train")
TORCHRUN = (str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "stages.train")
SCHEDULE = [{"type": "LinearLR", "start_factor": 0.1, "begin": 0, "end": 4},
            {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 4}]


def every(n: int, end: int) -> tuple[int, ...]:
    """Iterations n, 2n, ... up to `end`, and `end` itself (a hook's interval plus its last-iteration rule)."""
    return tuple(range(n, end + 1, n)) + ((end,) if end % n else ())


def iter_loop(max_iters: int, val_interval: int, checkpoint: int, log: int = 1, **more: Any) -> dict[str, Any]:
    return {"train_cfg": {"type": "IterBasedTrainLoop", "max_iters": max_iters, "val_interval": val_interval},
            "param_scheduler": SCHEDULE,
            "default_hooks": {"logger": {"interval": log}, "checkpoint": {"interval": checkpoint}}, **more}


@dataclass(frozen=True)
class Variant:
    overrides: dict[str, Any]
    checkpoints: tuple[int, ...]  # iterations that end with a checkpoint, in order
    logged: tuple[int, ...]  # iterations with an `Iter(train)` line
    end: int  # the iteration training ends at
    epoch_len: int = 0  # epoch loop: the kill between checkpoints lands mid-epoch
    package: str | None = None  # the user's own package (tests/toys/<name>) copied into the project


VARIANTS = {
    # Logged every 3 iterations, checkpointed every 5: the killed runs' partial logging windows are resumed too.
    "iter": Variant(iter_loop(24, 8, checkpoint=5, log=3), every(5, 24), every(3, 24), 24),
    # 4 iterations per epoch, checkpoints every 5 iterations: every resume is in the middle of an epoch.
    "epoch-mid-epoch": Variant(
        {"train_cfg": {"type": "EpochBasedTrainLoop", "max_epochs": 6, "val_interval": 2},
         "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "begin": 0, "end": 2},
                             {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 2}],
         "default_hooks": {"checkpoint": {"interval": 5, "by_epoch": False}}},
        every(5, 24), every(1, 24), 24, epoch_len=4),
    "accumulation": Variant(iter_loop(16, 8, checkpoint=4, optim_wrapper={"accumulative_counts": 2}),
                            every(4, 16), every(1, 16), 16),
    "ema": Variant(iter_loop(24, 8, checkpoint=5,
                             custom_hooks=[{"type": "EMAHook", "momentum": 0.2, "begin_iter": 4}]),
                   every(5, 24), every(1, 24), 24),
    # A user model (the own-project seam) whose Dropout draws from the global RNG in every step.
    "dropout-own-model": Variant(iter_loop(24, 8, checkpoint=5,
                                           model={"type": "noisyseg.model.DropoutSegmenter", "width": 8, "p": 0.3}),
                                 every(5, 24), every(1, 24), 24, package="noisyseg"),
    # No score can beat the best by 100 (mIoU is a percentage): validations at 4, 8, 12 stop training at 12 of 40.
    "early-stopping": Variant(iter_loop(40, 4, checkpoint=3,
                                        custom_hooks=[{"type": "EarlyStoppingHook", "monitor": "mIoU",
                                                       "patience": 2, "min_delta": 100.0}]),
                              (3, 6, 9, 12), every(1, 12), 12),
}
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TWO_PROCESSES = Variant(iter_loop(24, 8, checkpoint=5), every(5, 24), every(1, 24), 24)
# The same two processes started by the stage itself from params.yaml (engine/launch.py: accelerate launch).
TWO_FROM_PARAMS = Variant(iter_loop(24, 8, checkpoint=5, dist={"num_processes": 2, "main_process_port": _free_port()}),
                          every(5, 24), every(1, 24), 24)


# -- processes -----------------------------------------------------------------------------------------------------
def start(project: Project, log: str, cmd: tuple[str, ...], env: dict[str, str] | None = None) -> subprocess.Popen:
    """`cmd` in the project, output to `log`, in a session of its own (so killing its group spares the tests)."""
    with open(project.path / log, "w") as out:
        return subprocess.Popen(cmd, cwd=project.path, env={**project.env, **(env or {})}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill_all(proc: subprocess.Popen) -> None:
    """SIGKILL the process group of `proc` and of each of its descendants, as an OOM killer or a lost node would
    (torchrun starts every worker in a session of its own, so its group alone would leave them training)."""
    try:
        root = psutil.Process(proc.pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    groups = set()
    for member in family:
        try:
            groups.add(os.getpgid(member.pid))
        except ProcessLookupError:
            pass
    groups.discard(os.getpgrp())
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=60)
    _, alive = psutil.wait_procs(family, timeout=60)
    assert not alive, f"still running after SIGKILL: {alive}"


def wait_until(found: Callable[[], Any], proc: subprocess.Popen, log: Path, what: str, timeout: float = 240) -> Any:
    """Poll `found` every 10 ms until it returns something true; fails if `proc` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"exited {proc.returncode} before {what}:\n{log.read_text()[-4000:]}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:]}")


def run_through(project: Project, log: str, cmd: tuple[str, ...]) -> str:
    """Run `cmd` to its end; returns its output."""
    proc = start(project, log, cmd)
    try:
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_all(proc)
    text = (project.path / log).read_text()
    assert code == 0, f"{' '.join(cmd)} exited {code}:\n{text[-4000:]}"
    return text


def work_dir(project: Project) -> Path | None:
    found = [p for p in (project.path / "work_dirs").glob("*") if p.is_dir()]
    return found[0] if len(found) == 1 else None


def pointer(project: Project) -> str | None:
    """What `last_checkpoint` names right now (None before the first checkpoint)."""
    wd = work_dir(project)
    try:
        text = (wd / "last_checkpoint").read_text().strip() if wd else ""
    except FileNotFoundError:
        text = ""
    return text or None


def iteration(name: str) -> int:
    return int(name.removeprefix("iter_"))


def resumed_at(text: str) -> int:
    """The iteration a run's log says it resumed from (its checkpoint's name agrees)."""
    found = re.findall(r"resumed from \S*/iter_(\d+) at iteration (\d+)", text)
    assert len(found) == 1 and found[0][0] == found[0][1], text[-4000:]
    return int(found[0][0])


# -- what a run leaves -------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    weights: dict[str, torch.Tensor]
    train_metrics: dict[str, Any]
    series: dict[str, list[tuple[int, float]]]  # MLflow: each metric's (step, value) points, by step
    scalars: list[dict[str, Any]] | None  # <work dir>/scalars.jsonl, less the timings


def outcome(project: Project) -> Outcome:
    info = json.loads((project.path / "models/train_run.json").read_text())
    client = MlflowClient(project.store)
    run = client.get_run(info["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    series = {}
    for key in sorted(run.data.metrics):
        if key in TIMING:
            continue
        points = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        steps = [step for step, _ in points]
        assert len(steps) == len(set(steps)), f"{key}: some steps logged more than once: {steps}"
        series[key] = points
    wd = work_dir(project)
    assert wd is not None
    jsonl = wd / "scalars.jsonl"
    scalars = None
    if jsonl.is_file():
        scalars = [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                   for line in jsonl.read_text().splitlines()]
    return Outcome(load_file(str(project.path / "models/model.safetensors")),
                   json.loads((project.path / "metrics/train.json").read_text()), series, scalars)


def assert_same(got: Outcome, want: Outcome) -> None:
    assert got.weights.keys() == want.weights.keys()
    differ = [k for k in want.weights if not torch.equal(got.weights[k], want.weights[k])]
    assert not differ, f"final weights differ from the uninterrupted run's in {differ[:5]}"
    assert got.train_metrics == want.train_metrics
    assert got.series.keys() == want.series.keys()
    for key, points in want.series.items():
        assert got.series[key] == points, key
    assert got.scalars == want.scalars


# -- projects ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset, made once by the real prepare stage and copied into each project."""
    project = make_project(tmp_path_factory.mktemp("data"))
    project.run(sys.executable, "-m", "stages.prepare")
    return project.path / "data"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow sqlite store with its tables made, copied into each project: creating them takes a first run ~2 s,
    the same in every project, and is not what these tests are about."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def new_project(root: Path, variant: Variant, data: Path | None, store: Path) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = make_project(root, variant.overrides)
    if variant.package:
        shutil.copytree(TOYS / variant.package, project.path / variant.package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    if data is not None:
        shutil.copytree(data, project.path / "data")
    shutil.copy2(store, project.path / "mlflow.db")
    return project


class Reference:
    """The uninterrupted run of a variant, started in a project of its own beside the killed one: it runs while the
    kills do (two streams on two cores) and is waited for when its outcome is compared."""

    def __init__(self, root: Path, variant: Variant, data: Path, store: Path, cmd: tuple[str, ...] = TRAIN) -> None:
        self.project = new_project(root / "reference", variant, data, store)
        self.variant, self.cmd = variant, cmd
        self.proc = start(self.project, "train.log", cmd)

    def outcome(self) -> Outcome:
        try:
            code = self.proc.wait(timeout=300)
        finally:
            if self.proc.poll() is None:
                kill_all(self.proc)
        text = (self.project.path / "train.log").read_text()
        assert code == 0, f"the uninterrupted run exited {code}:\n{text[-4000:]}"
        result = outcome(self.project)
        assert result.train_metrics["iterations"] == self.variant.end
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            kill_all(self.proc)


@pytest.fixture
def reference(tmp_path: Path, data_dir: Path, empty_store: Path):
    """`reference(variant, cmd)` starts the uninterrupted run; it is stopped at the end of the test if still running."""
    started: list[Reference] = []

    def begin(variant: Variant, cmd: tuple[str, ...] = TRAIN) -> Reference:
        started.append(Reference(tmp_path, variant, data_dir, empty_store, cmd))
        return started[-1]

    yield begin
    for ref in started:
        ref.stop()


# -- the kills -------------------------------------------------------------------------------------------------------
def kill_three_times_then_finish(project: Project, variant: Variant, rng: random.Random,
                                 cmd: tuple[str, ...] = TRAIN) -> None:
    """SIGKILL between two checkpoints, then inside a checkpoint write, then right after a checkpoint (each point
    drawn from `rng`), rerunning after each; the fourth run must finish. Checks what each kill leaves behind."""
    ckpts = variant.checkpoints

    # 1. Between the first two checkpoints (one exists), mid-epoch in an epoch loop.
    between = [s for s in variant.logged if ckpts[0] < s < ckpts[1]
               and not (variant.epoch_len and s % variant.epoch_len == 0)]
    step = rng.choice(between)
    proc, log = start(project, "run1.log", cmd), project.path / "run1.log"
    try:
        wait_until(lambda: re.search(rf"Iter\(train\) \[ *{step}/", log.read_text()), proc, log, f"iteration {step}")
    finally:
        kill_all(proc)
    name = pointer(project)
    assert name is not None and iteration(name) >= ckpts[0], log.read_text()[-4000:]
    resume = iteration(name)

    # 2. Inside the write of a later checkpoint: its weights are on disk, its state not yet.
    later = [c for c in ckpts if resume < c < ckpts[-1]] or [c for c in ckpts if c > resume][:1]
    target = rng.choice(later)
    proc, log = start(project, "run2.log", cmd, {SLOW_WRITE_ENV: PAUSE}), project.path / "run2.log"
    marker = rf"{SLOW_WRITE_ENV}: inside the write of \.iter_{target}\.tmp"
    try:
        wait_until(lambda: re.search(marker, log.read_text()), proc, log, f"the write of iter_{target}")
    finally:
        kill_all(proc)
    text = log.read_text()
    assert resumed_at(text) == resume
    wd = work_dir(project)
    assert wd is not None
    partial = wd / f".iter_{target}.tmp"
    assert (partial / "model.safetensors").is_file() and not (partial / "state.pt").exists(), text[-4000:]
    assert not (wd / f"iter_{target}").exists()
    previous = pointer(project)
    assert previous is not None and resume <= iteration(previous) < target and (wd / previous / "state.pt").is_file()
    resume = iteration(previous)

    # 3. Right after a checkpoint past the one whose write was cut (before its validation, if it has one).
    target = rng.choice([c for c in ckpts if c > target])
    proc, log = start(project, "run3.log", cmd), project.path / "run3.log"
    try:
        wait_until(lambda: pointer(project) == f"iter_{target}", proc, log, f"checkpoint iter_{target}")
    finally:
        kill_all(proc)
    assert resumed_at(log.read_text()) == resume  # the checkpoint before the cut write, intact
    resume = target

    # 4. To the end.
    assert resumed_at(run_through(project, "run4.log", cmd)) == resume


@pytest.mark.parametrize("name", list(VARIANTS))
def test_killed_at_random_points_ends_bit_for_bit_like_an_uninterrupted_run(tmp_path, data_dir, empty_store,
                                                                           reference, name):
    variant = VARIANTS[name]
    want = reference(variant)
    project = new_project(tmp_path / "killed", variant, data_dir, empty_store)
    kill_three_times_then_finish(project, variant, random.Random(f"{SEED}:{name}"))
    assert_same(outcome(project), want.outcome())


@pytest.mark.multiprocess
def test_two_processes_killed_as_a_whole_end_bit_for_bit_like_an_uninterrupted_run(tmp_path, data_dir, empty_store,
                                                                                   reference):
    project = new_project(tmp_path / "killed", TWO_PROCESSES, data_dir, empty_store)
    # Not side by side: two torchrun jobs would be four processes on two cores.
    want = reference(TWO_PROCESSES, TORCHRUN).outcome()
    kill_three_times_then_finish(project, TWO_PROCESSES, random.Random(f"{SEED}:two-processes"), TORCHRUN)
    assert_same(outcome(project), want)


@pytest.mark.multiprocess
def test_two_processes_from_params_killed_as_a_whole_end_bit_for_bit_like_an_uninterrupted_run(
        tmp_path, data_dir, empty_store, reference):
    project = new_project(tmp_path / "killed", TWO_FROM_PARAMS, data_dir, empty_store)
    want = reference(TWO_FROM_PARAMS).outcome()
    kill_three_times_then_finish(project, TWO_FROM_PARAMS, random.Random(f"{SEED}:two-from-params"))
    assert_same(outcome(project), want)


def test_dvc_repro_killed_then_unlocked_reruns_to_the_same_weights(tmp_path, empty_store, data_dir, reference):
    variant = VARIANTS["iter"]
    want = reference(variant)
    project = new_project(tmp_path / "killed", variant, None, empty_store)  # `dvc repro` prepares the data itself
    step = random.Random(f"{SEED}:dvc").choice([s for s in variant.logged
                                                if variant.checkpoints[0] < s < variant.checkpoints[-1]])
    proc, log = start(project, "dvc.log", (str(BIN / "dvc"), "repro", "train")), project.path / "dvc.log"
    try:
        wait_until(lambda: re.search(rf"Iter\(train\) \[ *{step}/", log.read_text()), proc, log, f"iteration {step}")
    finally:
        kill_all(proc)  # dvc, its shell and the trainer: one process group
    assert pointer(project) is not None and not (project.path / "models/model.safetensors").exists()

    unlocked = project.run(str(BIN / "trainline"), "unlock")
    assert "Traceback" not in unlocked.stderr
    rerun = project.dvc("repro", "train")
    output = rerun.stdout + rerun.stderr
    assert "Running stage 'train'" in output and re.search(r"resumed from \S*/iter_\d+ at iteration", output), output
    assert "up to date" in project.dvc("status", "train").stdout
    assert_same(outcome(project), want.outcome())
