"""Start a stage on the processes and machines `dist` asks for: the stage re-executes itself through Accelerate's
launcher (its torch elastic agent runs in this process), and returns the workers' exit code."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

# Set in every process a launcher (accelerate launch, torchrun, our own launch) starts: such a process is a worker
# and trains; a process without them decides whether to launch.
WORKER_ENV = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "ACCELERATE_MIXED_PRECISION")
DEFAULT_PORT = 29500  # torch.distributed's own default rendezvous port


def is_worker() -> bool:
    return any(name in os.environ for name in WORKER_ENV)


def in_slurm_step() -> bool:
    """Inside a task that `srun` started (an sbatch script itself is not one: it runs once, on the first node)."""
    return "SLURM_PROCID" in os.environ and "SLURM_STEP_ID" in os.environ


def config_file_settings(path: str) -> dict[str, Any]:
    """The accelerate config file as a mapping (`trainline check` has made sure it is one)."""
    import yaml

    with open(path, encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    return loaded if isinstance(loaded, dict) else {}


def world_size(cfg: dict[str, Any]) -> int:
    """Processes over all machines: `dist.num_processes`, or the accelerate config file's `num_processes`."""
    dist = cfg.get("dist") or {}
    if dist.get("config_file"):
        return int(config_file_settings(dist["config_file"]).get("num_processes") or 1)
    return int(dist.get("num_processes") or 1)


def num_machines(cfg: dict[str, Any]) -> int:
    dist = cfg.get("dist") or {}
    if dist.get("config_file"):
        return int(config_file_settings(dist["config_file"]).get("num_machines") or 1)
    return int(dist.get("num_machines") or 1)


def needs_launch(cfg: dict[str, Any]) -> bool:
    """More than one process or machine is asked for and this process is not already one of the workers."""
    return (world_size(cfg) > 1 or num_machines(cfg) > 1) and not is_worker()


def slurm_main_host() -> str | None:
    """The first host of the Slurm job's node list (where machine 0 runs), as `scontrol` expands it."""
    nodes = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodes:
        return None
    if shutil.which("scontrol"):
        out = subprocess.run(["scontrol", "show", "hostnames", nodes], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.split():
            return out.stdout.split()[0]
    return nodes.split(",")[0].split("[")[0]


def rendezvous(cfg: dict[str, Any]) -> dict[str, Any]:
    """machine_rank, main_process_ip and main_process_port: params.yaml's, where unset Slurm's (one launcher per
    task: machine rank = SLURM_PROCID, machine 0 = the job's first node), else one machine on this host."""
    dist = cfg["dist"]
    slurm = in_slurm_step()
    rank = dist["machine_rank"]
    if rank is None:
        rank = int(os.environ["SLURM_PROCID"]) if slurm else 0
    ip = dist["main_process_ip"] or (slurm_main_host() if slurm else None) or "127.0.0.1"
    port = dist["main_process_port"]
    if port is None:
        # Two jobs on one node must not meet at the same port: under Slurm it follows the job id.
        port = 20000 + int(os.environ["SLURM_JOB_ID"]) % 20000 if slurm and "SLURM_JOB_ID" in os.environ \
            else DEFAULT_PORT
    return {"machine_rank": rank, "main_process_ip": ip, "main_process_port": port}


def launcher_flags(cfg: dict[str, Any]) -> list[str]:
    """`accelerate launch` flags for `dist`.

    `--multi_gpu` also on a CPU-only machine: there it starts N gloo processes (MULTI_CPU), whereas `--cpu
    --num_processes N` silently starts one (huggingface/accelerate#2741). With `dist.config_file` the file decides
    everything; only a machine rank it leaves open comes from Slurm."""
    dist = cfg["dist"]
    if dist["config_file"]:
        flags = ["--config_file", str(dist["config_file"])]
        if num_machines(cfg) > 1 and in_slurm_step() and dist["machine_rank"] is None \
                and "machine_rank" not in config_file_settings(dist["config_file"]):
            flags += ["--machine_rank", os.environ["SLURM_PROCID"]]
        return flags
    meet = rendezvous(cfg)
    flags = ["--multi_gpu", "--num_processes", str(dist["num_processes"]), "--num_machines",
             str(dist["num_machines"]), "--mixed_precision", "no", "--dynamo_backend", "no",
             "--main_process_port", str(meet["main_process_port"]), "--monitor_interval", "1"]
    if dist["num_machines"] > 1:
        flags += ["--machine_rank", str(meet["machine_rank"]), "--main_process_ip", meet["main_process_ip"]]
    return flags


def worker_command(stage: str, argv: list[str]) -> list[str]:
    """What each worker runs: this stage through `engine.launch`'s own entry, with the stage's arguments."""
    return ["-m", "engine.launch", stage, *argv]


def launch(stage: str, argv: list[str], cfg: dict[str, Any]) -> int:
    """Run `stage` on the processes `dist` asks for and wait; returns the exit code the stage should end with.

    The torch elastic agent runs in this process: SIGTERM/SIGINT to it reach every worker (each checkpoints and
    stops), and a worker that dies makes it stop the others (SIGTERM, then SIGKILL after 30 s)."""
    from accelerate.commands.launch import launch_command, launch_command_parser

    flags = launcher_flags(cfg)
    args = launch_command_parser().parse_args([*flags, *worker_command(stage, argv)])
    log = logging.getLogger("trainline")
    log.info("dist: starting %d process(es) on machine %s of %d: accelerate launch %s", world_size(cfg),
             args.machine_rank or 0, num_machines(cfg), " ".join(flags))
    # The workers import the project's packages from where the stage runs (DVC's temporary copies included).
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), os.environ.get("PYTHONPATH")) if p)
    return run_launcher(launch_command, args)


def run_launcher(launch_command: Any, args: Any) -> int:
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    try:
        launch_command(args)
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        code = int(failure.exitcode)
        return 128 - code if code < 0 else code or 1
    return 0


def main(argv: list[str] | None = None) -> None:
    """A worker: `python -m engine.launch <stage> [stage arguments]`."""
    from engine.pipeline.start import run_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("train", "eval"):
        sys.exit("usage: python -m engine.launch train|eval [--params FILE ...] (a worker of a launched stage)")
    stage, rest = args[0], args[1:]
    sys.path.insert(0, str(Path.cwd()))
    if stage == "train":
        from engine.pipeline.train import main as stage_main
    else:
        from engine.pipeline.eval import main as stage_main
    run_main(lambda: stage_main(rest))


if __name__ == "__main__":
    main()
