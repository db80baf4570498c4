"""Start-up cost of the CLI, side by side with `python -c "import torch"`, the floor of any command using torch.

Each arm is a fresh process; arms run interleaved (A B C, A B C, ...) and each figure is the median over rounds, so
the shared machine's noise hits every arm alike. `trainline check` runs on the shipped params.yaml (with its data
when it is there, as a user's check would).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINLINE = Path(sys.executable).with_name("trainline")

ARMS: dict[str, list[str]] = {
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    "trainline --help": [str(TRAINLINE), "--help"],
    "trainline check": [str(TRAINLINE), "check"],
}


def _seconds(command: list[str]) -> float:
    # PYTHONPATH: the code of this tree, not whichever checkout the console script was installed from.
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(ROOT)}
    # Bytecode caching on, as in a user's shell: the warm-up round compiles this repository's modules once, and no
    # timed run pays for compiling them again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def measure(rounds: int = 7) -> dict[str, float]:
    """Median wall seconds per arm over `rounds` interleaved rounds (one untimed warm-up round fills the disk cache)."""
    for command in ARMS.values():
        _seconds(command)
    times: dict[str, list[float]] = {name: [] for name in ARMS}
    for _ in range(rounds):
        for name, command in ARMS.items():
            times[name].append(_seconds(command))
    return {name: statistics.median(values) for name, values in times.items()}


def table(medians: dict[str, float], rounds: int) -> list[str]:
    """The markdown section for docs/benchmarks.md."""
    torch_s = medians['python -c "import torch"']
    lines = ["## Start-up", "",
             f"Fresh processes, interleaved, median of {rounds} rounds (`trainline check` on the shipped "
             "params.yaml, its datasets built when the data is there).", "",
             "| command | seconds (median) | ratio to `import torch` |", "|---|---|---|"]
    lines += [f"| `{name}` | {value:.2f} | {value / torch_s:.2f} |" for name, value in medians.items()]
    check_extra = medians["trainline check"] - torch_s
    lines += ["", f"`trainline --help` imports neither torch nor the engine. `trainline check` costs the torch import "
                  f"plus {check_extra:.2f} s: a dry build of every component (the model on the meta device, its "
                  "param groups, a trial optimizer and the schedulers, hooks, the evaluator and each split's "
                  "dataset). On these machines the torch import alone takes most of the time, so the check cannot "
                  "be faster than that floor without giving up the dry build.", ""]
    return lines


if __name__ == "__main__":
    result = measure()
    print("\n".join(table(result, 7)))
