"""Per-step overhead in instructions (callgrind): plain loop, hand-written Accelerate loop, the engine, the engine with
its default hooks and MLflow, on a tiny MLP where overhead dominates.

Each arm runs in a fresh `python` under `valgrind --tool=callgrind --collect-atstart=yes` at N=20 and N=120 steps;
instructions/step = (count(120) - count(20)) / 100 (imports and set-up cancel), start-up = the N=20 count (with the
repository's bytecode compiled beforehand, as for any second run of a stage). Instruction
counts do not move with the load of a shared machine (repeat runs agree within ~0.02 %); wall-clock times do.
`python -m benchmarks.instructions --arm plain --steps 20` runs one arm without valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ARMS = {"plain": "plain PyTorch loop", "accelerate": "hand-written Accelerate loop",
        "engine": "engine (logger interval 10⁶, no checkpoint, no MLflow)",
        "engine_mlflow": "engine, default hooks + MLflow (SQLite, logging every 10)"}
LOW, HIGH = 20, 120


# -- the workload: MLP 32→16→16→1, batch 64, SGD, seeded shuffling ----------------------------------------------

class MLP:
    """Built lazily so `--help` imports no torch; `MLP(...)` returns the nn.Module the engine calls."""

    def __new__(cls, width: int = 16) -> Any:
        import torch
        from torch import nn

        class _MLP(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body = nn.Sequential(nn.Linear(32, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                          nn.Linear(width, 1))

            def forward(self, batch: Any, mode: str = "predict") -> Any:
                x, y = batch
                out = self.body(x)
                if mode == "loss":
                    return {"loss": nn.functional.mse_loss(out, y)}
                return out

        torch.manual_seed(0)
        return _MLP()


def regression(split: str = "train", size: int = 1024) -> Any:
    import torch
    from torch.utils.data import TensorDataset

    gen = torch.Generator().manual_seed(1 if split == "train" else 3)
    x = torch.randn(size if split == "train" else 64, 32, generator=gen)
    return TensorDataset(x, x[:, :1] * 0.5 + 0.1)


class MSE:
    """A minimal evaluator for the engine arms (validation never runs in them)."""

    def reset(self) -> None:
        self.total, self.n = 0.0, 0

    def process(self, batch: Any, outputs: Any) -> None:
        self.total += float(((outputs - batch[1]) ** 2).sum())
        self.n += len(outputs)

    def compute(self) -> dict[str, float]:
        return {"mse": self.total / max(self.n, 1)}


def _loader() -> Any:
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(regression(), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(2))


def _batches(loader: Any, steps: int) -> Any:
    n = 0
    while True:
        for batch in loader:
            yield batch
            n += 1
            if n == steps:
                return


def run_plain(steps: int, work: Path) -> None:
    import torch

    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for batch in _batches(_loader(), steps):
        loss = model(batch, mode="loss")["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def run_accelerate(steps: int, work: Path) -> None:
    import torch
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    model = MLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model, opt, loader = accelerator.prepare(model, opt, _loader())
    for batch in _batches(loader, steps):
        with accelerator.accumulate(model):
            accelerator.backward(model(batch, mode="loss")["loss"])
            opt.step()
            opt.zero_grad()


def engine_cfg(steps: int, work: Path, mlflow: bool) -> dict:
    from engine.config import load_params, merge
    from engine.config.validate import check_params

    hooks: dict[str, Any] = {"checkpoint": None, "mlflow": None,
                             "logger": {"type": "LoggerHook", "interval": 10**6, "progress_bar": False}}
    if mlflow:
        hooks = {"checkpoint": None, "logger": {"type": "LoggerHook", "interval": 10, "progress_bar": False}}
    raw = merge({
        "prepare": None,
        "data": {"root": str(work / "data"), "batch_size": 64, "dataset": {"_delete_": True,
                                                                 "type": "benchmarks.instructions.regression"}},
        "evaluator": {"type": "benchmarks.instructions.MSE"},
        "optim": {"_delete_": True, "type": "SGD", "lr": 0.01},
        "optim_wrapper": {"type": "OptimWrapper", "accumulative_counts": 1, "clip_grad": None},
        "param_scheduler": [],
        "train_cfg": {"_delete_": True, "type": "IterBasedTrainLoop", "max_iters": steps, "val_interval": 10**6},
        "default_hooks": hooks, "custom_hooks": [], "resume": False,
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}"},
    }, load_params(ROOT / "params.yaml"))
    raw["model"] = {"type": "benchmarks.instructions.MLP"}
    return check_params(raw)[0]


def run_engine(steps: int, work: Path, mlflow: bool = False) -> None:
    from engine.build import build_training

    runner = build_training(engine_cfg(steps, work, mlflow), work)
    runner.val_loop = None
    runner.train_loop.val_loop = None
    runner.train()


RUNNERS = {"plain": run_plain, "accelerate": run_accelerate, "engine": run_engine,
           "engine_mlflow": lambda steps, work: run_engine(steps, work, mlflow=True)}
# The peer frameworks run in the benchmark venv that `make bench` builds (benchmarks/peer_arms.py); without it they are
# left out of the table.
BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
PEERS = {"lightning": "Lightning Trainer (logger, checkpointing, progress bar, summary off)",
         "mmengine": "MMEngine Runner (IterBasedTrainLoop, infinite sampler, logger and checkpoint hooks off)"}


def _peer(name: str) -> Any:
    def run(steps: int, work: Path) -> None:
        from benchmarks import peer_arms  # imports torch: only when the arm runs

        getattr(peer_arms, f"instructions_{name}")(steps, work)
    return run


def _python(arm: str) -> str:
    return str(BENCH_PYTHON) if arm in PEERS else sys.executable


if BENCH_PYTHON.exists():
    ARMS.update(PEERS)
    RUNNERS.update({name: _peer(name) for name in PEERS})


# -- the driver ---------------------------------------------------------------------------------------------------

def count(arm: str, steps: int) -> int:
    """Instructions of one fresh process running `arm` for `steps` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = _env()
        subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=yes", f"--callgrind-out-file={out}",
                        _python(arm), "-m", "benchmarks.instructions", "--arm", arm, "--steps", str(steps),
                        "--work", tmp], check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        text = out.read_text()
    match = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no instruction total in callgrind's output for {arm}")
    return int(match.group(1))


def _env() -> dict[str, str]:
    """The arms' environment: one thread, no telemetry, and bytecode caching on (as in a user's shell), so no arm's
    start-up count includes compiling this repository's modules from source (the installed packages' are cached)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DVC_NO_ANALYTICS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(arms: list[str], jobs: int = 2) -> dict[str, tuple[int, int]] | None:
    """(count at N=20, count at N=120) per arm, or None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    # Compile the repository's modules once, outside the counts (what any second run of a stage finds).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "engine", "benchmarks", "stages"], check=True,
                   env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
    runs = [(arm, n) for arm in arms for n in (LOW, HIGH)]
    with ThreadPoolExecutor(jobs) as pool:
        counts = dict(zip(runs, pool.map(lambda r: count(*r), runs), strict=True))
    return {arm: (counts[(arm, LOW)], counts[(arm, HIGH)]) for arm in arms}


def table(results: dict[str, tuple[int, int]] | None) -> list[str]:
    lines = ["## Instructions per step (callgrind)", ""]
    if results is None:
        return lines + ["Not measured: valgrind is not installed (`apt-get install valgrind`).", ""]
    per_step = {arm: (high - low) / (HIGH - LOW) for arm, (low, high) in results.items()}
    base = per_step.get("plain")
    lines += [f"Measured by `python -m benchmarks.instructions` (also part of `make bench`): tiny MLP 32→16→16→1, "
              f"batch 64, SGD, 1 thread, each arm a fresh process under callgrind at N={LOW} and N={HIGH} steps; "
              f"per step = (count({HIGH}) − count({LOW})) / {HIGH - LOW}, start-up = the N={LOW} count.", "",
              "| arm | instructions / step | over plain | ratio to plain | start-up (N=20) |", "|---|---|---|---|---|"]
    for arm, value in per_step.items():
        over = "—" if base is None or arm == "plain" else f"{(value - base) / 1e6:+.2f} M"
        ratio = "1.000" if base is None or arm == "plain" else f"{value / base:.3f}"
        lines.append(f"| {ARMS[arm]} | {value / 1e6:.2f} M | {over} | {ratio} | {results[arm][0] / 1e9:.2f} G |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arm", choices=sorted(RUNNERS))
    parser.add_argument("--steps", type=int, default=LOW)
    parser.add_argument("--work", default=None)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if args.arm:  # one arm, in this process (what callgrind counts)
        import torch

        torch.set_num_threads(1)
        sys.path.insert(0, str(ROOT))
        work = Path(args.work or tempfile.mkdtemp())
        RUNNERS[args.arm](args.steps, work)
        return
    print("\n".join(table(measure(list(RUNNERS), args.jobs))))  # noqa: T201


if __name__ == "__main__":
    main()
