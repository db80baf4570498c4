"""`dist` in params.yaml through the unchanged stage commands on CPU (gloo): two processes under `dvc exp run`, the
same weights as one process with twice the batch, evaluation over the whole split exactly once, a graceful stop
through the launcher, a rank that dies, and two launchers as two machines on one host."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

from tests.e2e.conftest import Project, make_project

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

TOYS = Path(__file__).resolve().parents[1] / "toys"
TRAIN = (sys.executable, "-m", "stages.train")
EVAL = (sys.executable, "-m", "stages.eval")
# No BatchNorm, no dropout, no flips: one process over 2B items and two over B each compute the same mean gradient.
PLAIN = {"model": {"type": "noisyseg.model.DropoutSegmenter", "width": 8, "p": 0.0}, "param_scheduler": [],
         "data": {"dataset": {"type": "SegDataset", "flip": False}},
         # 7 test items in batches of 3: two processes see 4 + 4 (one padded duplicate), the evaluator must see 7.
         "prepare": {"type": "SyntheticShapes", "image_size": 32, "num_train": 32, "num_val": 8, "num_test": 7}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dist(n: int, **more) -> dict:
    return {"dist": {"num_processes": n, "main_process_port": free_port(), **more}}


def with_package(project: Project, name: str) -> Project:
    shutil.copytree(TOYS / name, project.path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return project


def edit(project: Project, **sections) -> None:
    params = project.params()
    for key, value in sections.items():
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    project.write_params(params)


def run_ok(project: Project, *cmd: str, timeout: int = 400) -> subprocess.CompletedProcess:
    result = project.run(*cmd, check=False, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result


def ranks_started(text: str) -> int:
    return text.count("dist: starting")


def test_dvc_exp_run_with_two_processes(tmp_path):
    project = make_project(tmp_path, {"dist": {"main_process_port": free_port()}})
    result = project.dvc("exp", "run", "-S", "dist.num_processes=2")
    output = result.stdout + result.stderr
    assert "dist: starting 2 process(es)" in output, output[-3000:]
    info = json.loads((project.path / "models/train_run.json").read_text())
    client = MlflowClient(project.store)
    run = client.get_run(info["mlflow_run_id"])
    assert run.data.tags["world_size"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert "test/mIoU" in run.data.metrics or any(k.startswith("test/") for k in run.data.metrics)
    assert json.loads((project.path / "metrics/eval.json").read_text())["split"] == "test"
    # The workspace now holds the experiment's results: nothing left to run.
    assert "up to date" in project.dvc("status").stdout


@pytest.fixture(scope="module")
def plain_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = with_package(make_project(tmp_path_factory.mktemp("data"), PLAIN), "noisyseg")
    run_ok(project, sys.executable, "-m", "stages.prepare")
    return project.path / "data"


def plain_project(root: Path, data: Path, overrides: dict) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    project = with_package(make_project(root, {**PLAIN, **overrides}), "noisyseg")
    shutil.copytree(data, project.path / "data")
    return project


def test_two_processes_of_batch_b_train_like_one_of_batch_2b_and_evaluate_every_item_once(tmp_path, plain_data):
    loop = {"train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 4, "val_interval": 4}}
    one = plain_project(tmp_path / "one", plain_data, {**loop, "data": {**PLAIN["data"], "batch_size": 8,
                                                                          "val_batch_size": 3}})
    two = plain_project(tmp_path / "two", plain_data, {**loop, **dist(2), "data": {**PLAIN["data"], "batch_size": 4,
                                                                                    "val_batch_size": 3}})
    run_ok(one, *TRAIN)
    assert "dist: starting 2 process(es)" in run_ok(two, *TRAIN).stderr
    w1 = load_file(str(one.path / "models/model.safetensors"))
    w2 = load_file(str(two.path / "models/model.safetensors"))
    assert w1.keys() == w2.keys()
    for key in w1:
        torch.testing.assert_close(w2[key], w1[key], rtol=1e-5, atol=1e-6, msg=key)

    # The two-process weights scored by two processes and by one: the same metrics, over all 7 test items.
    run_ok(two, *EVAL)
    two_procs = json.loads((two.path / "metrics/eval.json").read_text())
    edit(two, dist={"num_processes": 1})
    # One process reads the same weights (the eval stage does not hash dist).
    run_ok(two, *EVAL)
    one_proc = json.loads((two.path / "metrics/eval.json").read_text())
    assert two_procs == one_proc
    from engine.seg.dataset import SegDataset

    assert len(SegDataset(str(two.path / "data/shapes"), "test")) == 7


def wait_for(check, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, f"exited {proc.returncode} before {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def no_workers_left(proc: subprocess.Popen) -> None:
    """The launcher's whole family is gone (workers included)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"left running: {alive}"


def test_sigterm_to_the_stage_checkpoints_every_rank_and_resumes(tmp_path, plain_data):
    loop = {"train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 40, "val_interval": 40},
            "param_scheduler": [], "default_hooks": {"logger": {"type": "LoggerHook", "interval": 1},
                                                      "checkpoint": {"type": "CheckpointHook", "interval": 100}}}
    project = plain_project(tmp_path / "p", plain_data, {**loop, **dist(2)})
    log = project.path / "train.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(TRAIN, cwd=project.path, env=project.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for(lambda: "Iter(train) [ 3/" in log.read_text() or "Iter(train) [3/" in log.read_text(), proc, 300,
                 "iteration 3")
        proc.send_signal(signal.SIGTERM)  # to the stage process only, as dvc or a scheduler would
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert code == 143, text[-4000:]
    assert "checkpoint saved to" in text, text[-4000:]
    no_workers_left(proc)
    result = run_ok(project, *TRAIN)
    assert "resumed from" in result.stderr + result.stdout
    assert json.loads((project.path / "models/train_run.json").read_text())["iterations"] == 40


def test_a_rank_that_dies_ends_the_run_with_a_non_zero_code(tmp_path, plain_data):
    loop = {"train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 40, "val_interval": 40}, "param_scheduler": [],
            "custom_hooks": [{"type": "faults.hooks.DieOnRank", "rank": 1, "at": 2, "code": 3}]}
    project = with_package(plain_project(tmp_path / "p", plain_data, {**loop, **dist(2)}), "faults")
    start = time.monotonic()
    with open(project.path / "train.log", "w") as out:
        proc = subprocess.Popen(TRAIN, cwd=project.path, env=project.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        code = proc.wait(timeout=120)  # the test: no hang
    finally:
        if proc.poll() is None:
            proc.kill()
    text = (project.path / "train.log").read_text()
    assert code != 0, text[-4000:]
    assert "DieOnRank: rank 1 exits 3" in text
    no_workers_left(proc)
    assert time.monotonic() - start < 120
    assert not (project.path / "models/model.safetensors").exists()


def test_two_launchers_as_two_machines_on_one_host(tmp_path, plain_data):
    port = free_port()
    machines = {"dist": {"num_processes": 2, "num_machines": 2, "main_process_ip": "127.0.0.1",
                         "main_process_port": port}}
    loop = {"train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 4, "val_interval": 4}}
    # Each machine has its own copy of the project, as two hosts would; only machine_rank differs.
    first = plain_project(tmp_path / "m0", plain_data, {**loop, **machines})
    second = plain_project(tmp_path / "m1", plain_data, {**loop, **machines})
    edit(first, dist={"machine_rank": 0})
    edit(second, dist={"machine_rank": 1})
    procs = []
    for project in (first, second):
        with open(project.path / "train.log", "w") as out:
            procs.append(subprocess.Popen(TRAIN, cwd=project.path, env=project.env, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        codes = [p.wait(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    logs = [(p.path / "train.log").read_text() for p in (first, second)]
    assert codes == [0, 0], "\n=====\n".join(t[-3000:] for t in logs)
    assert "on machine 0 of 2" in logs[0] and "on machine 1 of 2" in logs[1]
    info = json.loads((first.path / "models/train_run.json").read_text())
    run = MlflowClient(first.store).get_run(info["mlflow_run_id"])
    assert run.data.tags["world_size"] == "2"
    # Global rank 0 (machine 0) writes the outputs; machine 1 writes none.
    assert not (second.path / "models/train_run.json").exists()


def _probe(project: Project, rank: int, epoch: int) -> dict:
    return torch.load(project.path / "probe" / f"rank{rank}_epoch{epoch}.pt")


@pytest.mark.parametrize("sync", [True, False])
def test_sampler_seed_and_sync_buffers_hooks_on_two_processes(tmp_path, sync):
    """DistSamplerSeedHook: each rank trains on its own items, in a new order each epoch. SyncBuffersHook: the
    BatchNorm statistics are equal on both ranks after each epoch (and, as a control, differ without it)."""
    hooks = [{"type": "SyncBuffersHook"}] if sync else []
    project = with_package(make_project(tmp_path, {
        **dist(2), "train_cfg": {"type": "EpochBasedTrainLoop", "max_epochs": 2, "val_interval": 10},
        "param_scheduler": [], "custom_hooks": [*hooks, {"type": "probe.hook.ProbeHook"}],
        "default_hooks": {"checkpoint": {"type": "CheckpointHook", "interval": 10}}}), "probe")
    run_ok(project, *TRAIN[:1], "-m", "stages.prepare")
    run_ok(project, *TRAIN)
    seen = {(r, e): _probe(project, r, e) for r in (0, 1) for e in (0, 1)}
    for epoch in (0, 1):
        first, second = seen[0, epoch], seen[1, epoch]
        assert len(first["batches"]) == len(second["batches"]) == 2  # 32 items, batch 8, 2 ranks
        assert not set(first["batches"]) & set(second["batches"])  # each rank its own shard
        same = all(torch.equal(first["buffers"][k], second["buffers"][k]) for k in first["buffers"])
        assert same is sync
    for rank in (0, 1):  # re-seeded per epoch: another order (and here, with 2 batches a rank, other items)
        assert seen[rank, 0]["batches"] != seen[rank, 1]["batches"]
