"""The Slurm recipe of docs/scale-out.md against a real single-node Slurm that the test starts itself (slurmctld and
slurmd on localhost, no cgroups, no munge: auth/none): `sbatch --wait` of a 2-task job of the example, each task one
"machine" of a two-machine run whose rendezvous comes from Slurm's environment."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import ROOT, make_project

pytestmark = [pytest.mark.slow, pytest.mark.multiprocess]

DAEMONS = ("slurmctld", "slurmd", "sbatch", "scontrol", "sinfo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLURM_CONF = """\
ClusterName=trainline
SlurmctldHost=localhost
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/none
CredType=cred/none
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
NodeName=localhost CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A one-node Slurm cluster on localhost; yields the environment that talks to it."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        pytest.skip(f"Slurm is not installed (apt-get install slurm-wlm): no {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs jobs as their users and needs root")
    path = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (path / sub).mkdir()
    conf = path / "slurm.conf"
    conf.write_text(SLURM_CONF.format(user=getpass.getuser(), ctld_port=free_port(), d_port=free_port(), dir=path,
                                      cpus=max(2, os.cpu_count() or 2)))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [subprocess.Popen([name, "-D", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(path / f"{name}.out", "w"), start_new_session=True)
               for name in ("slurmctld", "slurmd")]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mix"):
                break
            time.sleep(0.5)
        else:
            logs = "\n".join((path / f).read_text()[-2000:] for f in ("slurmctld.log", "slurmd.log")
                             if (path / f).exists())
            pytest.fail(f"the local Slurm did not come up:\n{logs}")
        yield env
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()


def test_sbatch_two_task_job_trains_and_evaluates_as_two_machines(tmp_path, slurm):
    project = make_project(tmp_path, {
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 4, "val_interval": 4},
        "param_scheduler": [],
        # Machine rank, address and port are left to Slurm (SLURM_PROCID, the job's first node, the job id).
        "dist": {"num_processes": 2, "num_machines": 2, "config_file": None}})
    shutil.copytree(ROOT / "docs/slurm", project.path / "slurm")
    project.commit("slurm scripts")
    env = {**project.env, **{k: v for k, v in slurm.items() if k == "SLURM_CONF"}}
    # One node here: the recipe's two nodes become two tasks on it (command-line options override #SBATCH lines).
    result = subprocess.run(["sbatch", "--wait", "--nodes=1", "--ntasks=2", "--ntasks-per-node=2", "--cpus-per-task=1",
                             "--time=10", "--output=slurm.out", "slurm/multi-node.sbatch"],
                            cwd=project.path, env=env, capture_output=True, text=True, timeout=900)
    out = (project.path / "slurm.out").read_text() if (project.path / "slurm.out").exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{out[-5000:]}"
    assert "on machine 0 of 2" in out and "on machine 1 of 2" in out, out[-5000:]
    info = json.loads((project.path / "models/train_run.json").read_text())
    assert info["iterations"] == 4
    run = MlflowClient(project.store).get_run(info["mlflow_run_id"])
    assert run.data.tags["world_size"] == "2"
    assert json.loads((project.path / "metrics/eval.json").read_text())["split"] == "test"
    # dvc commit recorded what the srun steps made: `dvc repro` has nothing left to do.
    assert "up to date" in project.dvc("status").stdout
