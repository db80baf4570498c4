"""Baselines of the shapes presets: each preset for 3 seeds through the real prepare/train/eval stages, each run in a
scratch copy of the project; writes docs/baselines.json (per seed: test mIoU, process CPU seconds, params_hash)
and docs/baselines.md (per preset: the command, mIoU mean ± std, CPU time, params_hash).

`python benchmarks/baselines.py [--presets fcn_shapes ...] [--seeds 42 43 44]`; presets not named keep their
recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_params  # noqa: E402
from engine.config.schema import training_hash  # noqa: E402
from engine.config.validate import resolve  # noqa: E402

PRESETS = ("unet_shapes", "fcn_shapes", "segformer_shapes", "vit_shapes_layer_decay", "convnext_shapes_stage_decay")
SEEDS = (42, 43, 44)
STAGES = ("prepare", "train", "eval")
THREADS = 1
# What a run needs of the project; dvc.yaml is left behind (the stages are run directly, one after the other).
PROJECT_FILES = ("engine", "stages", "configs")
JSON_PATH = ROOT / "docs" / "baselines.json"
MD_PATH = ROOT / "docs" / "baselines.md"


def selection_params(preset: str, seed: int) -> str:
    """The params.yaml that selects a preset with one seed (what docs/presets.md tells a user to write)."""
    return f"_base_: configs/{preset}.yaml\nseed: {seed}\n"


def preset_hash(preset: str, seed: int, root: Path = ROOT) -> str:
    """The params hash of the shipped preset with this seed (what a run of it trains under)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "configs").symlink_to(root / "configs")  # the layout of a project's root
        params = Path(tmp) / "params.yaml"
        params.write_text(selection_params(preset, seed), encoding="utf-8")
        return training_hash(resolve(load_params(params)))


def run_one(preset: str, seed: int) -> dict[str, Any]:
    """One seed of one preset in a scratch copy: the stages' CPU seconds, the test metrics and the params hash."""
    with tempfile.TemporaryDirectory(prefix=f"baseline-{preset}-") as tmp:
        work = Path(tmp)
        for name in PROJECT_FILES:
            shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
        (work / "params.yaml").write_text(selection_params(preset, seed), encoding="utf-8")
        # One torch thread per run: CPU time then counts work, not threads spinning while they wait for each other,
        # and runs in parallel do not oversubscribe the cores.
        env = {**os.environ, "PYTHONPATH": str(work), "MLFLOW_DISABLE_TELEMETRY": "true",
               "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(THREADS)}
        env.pop("MLFLOW_TRACKING_URI", None)
        cpu, start = 0.0, time.perf_counter()
        for stage in STAGES:
            with open(work / f"{stage}.log", "w", encoding="utf-8") as log:
                process = subprocess.Popen([sys.executable, "-m", f"stages.{stage}"], cwd=work, env=env,
                                           stdout=log, stderr=subprocess.STDOUT)
                _, status, usage = os.wait4(process.pid, 0)  # this child's own CPU, whatever runs beside it
                process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                tail = (work / f"{stage}.log").read_text(encoding="utf-8")[-3000:]
                raise RuntimeError(f"{preset} seed {seed}: stage {stage} failed ({process.returncode}):\n{tail}")
            cpu += usage.ru_utime + usage.ru_stime
        metrics = json.loads((work / "metrics" / "eval.json").read_text(encoding="utf-8"))
        run_info = json.loads((work / "models" / "train_run.json").read_text(encoding="utf-8"))
        params_hash = training_hash(resolve(load_params(work / "params.yaml")))
    if run_info.get("params_hash") != params_hash:
        raise RuntimeError(f"{preset} seed {seed}: trained under params_hash {run_info.get('params_hash')}, "
                           f"expected {params_hash}")
    return {"seed": seed, "mIoU": metrics["mIoU"], "aAcc": metrics.get("aAcc"), "cpu_s": round(cpu, 1),
            "wall_s": round(time.perf_counter() - start, 1), "params_hash": params_hash}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    """mIoU mean and sample standard deviation over the seeds, mean CPU seconds per run."""
    mious = [r["mIoU"] for r in runs]
    return {"mIoU_mean": statistics.mean(mious), "mIoU_std": statistics.stdev(mious) if len(mious) > 1 else 0.0,
            "cpu_s_mean": statistics.mean(r["cpu_s"] for r in runs)}


def render(doc: dict[str, Any]) -> str:
    """docs/baselines.md from docs/baselines.json (a test keeps the two equal)."""
    machine = doc["machine"]
    lines = [
        "# Baselines of the shapes presets",
        "",
        "Each preset of `configs/` on the generated shapes, trained and scored by the real `prepare` → `train` →",
        "`eval` stages for three seeds, each in a fresh copy of the project. mIoU is the test split's (percent),",
        "mean ± sample standard deviation over the seeds; CPU time is the process CPU seconds of the three stages",
        "per seed (user + system, all threads), averaged over the seeds. `params_hash` is that of the first seed",
        "(`work_dirs/<params_hash>/`); docs/baselines.json holds every seed's figures and hash, and a test checks",
        "that they are the hashes of the presets as shipped.",
        "",
        f"Measured on {machine['cpu']} ({machine['cores']} cores, shared), {machine['python']}, torch "
        f"{machine['torch']} with {machine['torch_threads']} thread per run; regenerate with "
        f"`python benchmarks/baselines.py --jobs 3` (`--presets NAME ...` for some).",
        "",
        "To reproduce one seed, write params.yaml as below (docs/presets.md), then "
        "`trainline dvc-params && dvc repro`:",
        "",
        "| preset | params.yaml | test mIoU (3 seeds) | CPU time per run | params_hash (seed 42) |",
        "|---|---|---|---|---|",
    ]
    for name, entry in doc["presets"].items():
        s = entry["summary"]
        seeds = ", ".join(str(r["seed"]) for r in entry["runs"])
        command = f"`_base_: configs/{name}.yaml` + `seed: {entry['runs'][0]['seed']}` (seeds {seeds})"
        lines.append(f"| `{name}` | {command} | {s['mIoU_mean']:.2f} ± {s['mIoU_std']:.2f} | "
                     f"{s['cpu_s_mean']:.0f} s | `{entry['runs'][0]['params_hash']}` |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": f"Python {platform.python_version()}",
            "torch": torch.__version__, "torch_threads": THREADS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=None, help="presets to run (default: every shapes preset)")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(SEEDS))
    parser.add_argument("--jobs", type=int, default=1, help="seeds run side by side (CPU time is per run anyway)")
    args = parser.parse_args(argv)
    chosen = args.presets or [p for p in PRESETS if (ROOT / "configs" / f"{p}.yaml").is_file()]
    doc = json.loads(JSON_PATH.read_text(encoding="utf-8")) if JSON_PATH.is_file() else {"presets": {}}
    doc["machine"] = machine()
    for preset in chosen:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(lambda seed, name=preset: run_one(name, seed), args.seeds))
        for run in runs:
            print(f"{preset}: {run}", flush=True)  # noqa: T201 - progress of a long run
        doc["presets"][preset] = {"runs": runs, "summary": summary(runs)}
        ordered = {p: doc["presets"][p] for p in PRESETS if p in doc["presets"]}
        doc["presets"] = ordered | {p: v for p, v in doc["presets"].items() if p not in ordered}
        JSON_PATH.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        MD_PATH.write_text(render(doc), encoding="utf-8")


if __name__ == "__main__":
    main()
