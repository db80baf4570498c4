"""Checkpoint save and load throughput of the engine against raw `torch.save`/`torch.load` and safetensors of the same
state, and the training stall per checkpoint.

Two states: the example model of params.yaml (UNet, AdamW) and a ≈50 MB model (MLP 32→3500→3500→1, AdamW), each after
two training iterations so the optimizer holds its moments. The engine saves through `Runner.save_checkpoint` (what
CheckpointHook calls: atomic directory, safetensors weights + `state.pt`, fsync, rename, pointer) and loads with
`engine.checkpoint.load_checkpoint` (what a resume reads); the raw arms write the model and optimizer state dicts
as one `torch.save` file / one safetensors file of the flattened tensors, without fsync, and with fsync (the engine's
durability). Throughput = bytes of the model + optimizer tensors / seconds, the same numerator for every arm; arms
interleaved, median of the rounds; every load reads every page of what it loaded (safetensors maps files lazily).
The stall is the time the training loop is blocked in CheckpointHook's save, and, for comparison, what a background
save would block for: the device-to-host snapshot of the same state.

`python -m benchmarks.checkpoint` (part of `make bench`) writes the "Checkpoints" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.docs_section import write_section  # noqa: E402
from engine.checkpoint import load_checkpoint, snapshot  # noqa: E402
from engine.config import load_params, merge  # noqa: E402
from engine.config.validate import check_params  # noqa: E402

WIDE = 3500  # MLP 32→3500→3500→1: 12.4 M parameters, 50 MB of fp32 weights


def _cfg(work: Path, overrides: dict, model: dict | None = None) -> dict:
    raw = merge({"train_cfg": {"_delete_": True, "type": "IterBasedTrainLoop", "max_iters": 2, "val_interval": 10**6},
                 "default_hooks": {"checkpoint": None, "mlflow": None,
                                   "logger": {"type": "LoggerHook", "interval": 10**6, "progress_bar": False}},
                 "custom_hooks": [], "resume": False, "param_scheduler": [], **overrides},
                load_params(ROOT / "params.yaml"))
    if model is not None:
        raw["model"] = model
    return check_params(raw)[0]


def example_cfg(work: Path) -> dict:
    return _cfg(work, {"prepare": {"num_train": 32, "num_val": 8, "num_test": 8}, "data": {"root": str(work / "data")}})


def wide_cfg(work: Path) -> dict:
    return _cfg(work, {"prepare": None,
                       "data": {"root": str(work / "data"), "batch_size": 64,
                                "dataset": {"_delete_": True, "type": "benchmarks.instructions.regression"}},
                       "evaluator": {"type": "benchmarks.instructions.MSE"}},
                model={"type": "benchmarks.instructions.MLP", "width": WIDE})


def trained_runner(cfg: dict, work: Path) -> Any:
    """A runner after two training iterations (the optimizer's moments exist)."""
    from accelerate.state import AcceleratorState, GradientState

    from engine.build import build_training

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    runner = build_training(cfg, work)
    runner.val_loop = None
    runner.train_loop.val_loop = None
    runner.train()
    return runner


def _tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in nested dicts/lists, by a dotted path (what safetensors can store)."""
    if isinstance(obj, torch.Tensor):
        return {prefix.rstrip("."): obj.detach().contiguous()}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else []
    out: dict[str, torch.Tensor] = {}
    for key, value in items:
        out.update(_tensors(value, f"{prefix}{key}."))
    return out


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _touch(obj: Any) -> None:
    """Read one value of every 4 KB page of every tensor: safetensors maps files lazily, and a resume reads it all."""
    for tensor in _tensors(obj).values():
        if tensor.numel():
            float(tensor.reshape(-1)[::1024].sum())


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _snapshot(runner: Any) -> Any:
    """What a background save copies on the training thread: weights and optimizer state, to host memory."""
    return snapshot(runner.model_weights()), snapshot(runner.optim_wrapper.state_dict())


def measure(runner: Any, tmp: Path, rounds: int) -> dict[str, Any]:
    """Seconds per operation (lists over rounds) and the tensor bytes of the model + optimizer state."""
    state = {"model": runner.model_weights(), "optimizer": runner.optim_wrapper.state_dict()}
    flat = _tensors(state)
    nbytes = sum(t.numel() * t.element_size() for t in flat.values())
    times: dict[str, list[float]] = {}
    pt, st = tmp / "raw.pt", tmp / "raw.safetensors"

    def add(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    for r in range(rounds):
        name = f"iter_{r}"
        add("engine save (Runner.save_checkpoint)", _timed(lambda name=name: runner.save_checkpoint(name)))
        add("torch.save", _timed(lambda: torch.save(state, pt)))
        add("torch.save + fsync", _timed(lambda: (torch.save(state, pt), _fsync(pt))))
        add("safetensors save_file", _timed(lambda: save_file(flat, str(st))))
        add("safetensors save_file + fsync", _timed(lambda: (save_file(flat, str(st)), _fsync(st))))
        add("snapshot (device-to-host copy)", _timed(lambda: _snapshot(runner)))
        path = runner.work_dir / name
        add("engine load (load_checkpoint)", _timed(lambda path=path: _touch(load_checkpoint(path))))
        add("torch.load (weights_only)", _timed(lambda: _touch(torch.load(pt, map_location="cpu", weights_only=True))))
        add("safetensors load_file", _timed(lambda: _touch(load_file(str(st)))))
        if r >= 2:  # keep the disk use bounded, as max_keep_ckpts would
            shutil.rmtree(runner.work_dir / f"iter_{r - 2}", ignore_errors=True)
    return {"bytes": nbytes, "times": times}


def stall(cfg: dict, work: Path, iters: int, interval: int, background: bool) -> dict[str, float]:
    """Medians, in seconds, of a run with CheckpointHook every `interval` iterations: `blocked`, the time the loop
    spends in the hook's save; `next`, the iteration after a checkpoint (during a background write); `other`, the
    other iterations. The hook's save is timed where the loop calls it."""
    from engine.hooks.checkpoint_hook import CheckpointHook

    cfg = dict(cfg)
    cfg["train_cfg"] = {**cfg["train_cfg"], "max_iters": iters}
    cfg["default_hooks"] = {**cfg["default_hooks"], "checkpoint": {
        "type": "CheckpointHook", "interval": interval, "max_keep_ckpts": 2, "background": background}}
    blocked: list[float] = []
    stamps: list[float] = []
    original = CheckpointHook.after_train_iter

    def timed(self: Any, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        step, start = runner.iter + 1, time.perf_counter()
        original(self, runner, batch_idx, data_batch, outputs)
        end = time.perf_counter()
        stamps.append(end)
        if self.due(step) and step < iters:  # the last one is written in place either way
            blocked.append(end - start)

    CheckpointHook.after_train_iter = timed  # type: ignore[method-assign]
    try:
        trained_runner(cfg, work)
    finally:
        CheckpointHook.after_train_iter = original  # type: ignore[method-assign]
    # stamps[j] ends iteration j + 1; the interval before it is that iteration (with its checkpoint, if due)
    steps = dict(enumerate((b - a for a, b in zip(stamps, stamps[1:], strict=False)), start=2))
    after = [t for i, t in steps.items() if i % interval == 1 and i < iters]
    other = [t for i, t in steps.items() if i % interval not in (0, 1) and i < iters]
    return {"blocked": statistics.median(blocked), "next": statistics.median(after),
            "other": statistics.median(other)}


def table(results: list[tuple[str, dict[str, Any]]], stalls: list[tuple[str, dict[str, dict[str, float]]]],
          rounds: int) -> list[str]:
    lines = ["## Checkpoints", "",
             f"Measured by `python -m benchmarks.checkpoint` (part of `make bench`), median of {rounds} interleaved "
             "rounds on the local disk, 1 torch thread. State = the model's weights and the AdamW optimizer's state "
             "after two iterations; MB/s = MB of those tensors / seconds (the same numerator for every arm); ratio = "
             "the arm's throughput / that of the raw arm without fsync of the same format family (saves: "
             "`torch.save`, loads: `torch.load`).", ""]
    for label, res in results:
        mb = res["bytes"] / 2**20
        med = {k: statistics.median(v) for k, v in res["times"].items()}
        lines += [f"{label}: {mb:.1f} MB of tensors.", "",
                  "| operation | ms (median) | range | MB/s | ratio |", "|---|---|---|---|---|"]
        for name, seconds in med.items():
            base = med["torch.load (weights_only)"] if "load" in name else med["torch.save"]
            low, high = min(res["times"][name]), max(res["times"][name])
            lines.append(f"| {name} | {seconds * 1000:.1f} | {low * 1000:.1f}–{high * 1000:.1f} | "
                         f"{mb / seconds:.0f} | {base / seconds:.2f} |")
        engine_save = med["torch.save"] / med["engine save (Runner.save_checkpoint)"]
        engine_load = med["torch.load (weights_only)"] / med["engine load (load_checkpoint)"]
        durable = med["torch.save + fsync"] / med["engine save (Runner.save_checkpoint)"]
        lines += ["", f"Target ≥ 0.9× raw: engine save {engine_save:.2f}× `torch.save` "
                  f"({'met' if engine_save >= 0.9 else f'missed by {0.9 - engine_save:.2f}'}; {durable:.2f}× "
                  f"`torch.save` + fsync), engine load {engine_load:.2f}× `torch.load` "
                  f"({'met' if engine_load >= 0.9 else f'missed by {0.9 - engine_load:.2f}'}).", ""]
    lines += ["Training stall per checkpoint: a run with CheckpointHook every 10 iterations (max_keep_ckpts 2), "
              "written in place (`background: false`, the default) and by the background writer (`background: "
              "true`); the time the training loop is blocked in the hook's save, the iteration right after a "
              "checkpoint (when a background write is running) and the other iterations, medians:", "",
              "| model | save | blocked per checkpoint, ms | next iteration, ms | other iterations, ms |",
              "|---|---|---|---|---|"]
    for label, by_mode in stalls:
        for mode, figures in by_mode.items():
            lines.append(f"| {label} | {mode} | {figures['blocked'] * 1000:.1f} | {figures['next'] * 1000:.1f} | "
                         f"{figures['other'] * 1000:.1f} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from engine.seg.synthetic import generate_dataset

    results, stalls = [], []
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp_name:  # the project's disk, where work_dirs live
        tmp = Path(tmp_name)
        ex = example_cfg(tmp)
        generate_dataset(tmp / "data", seed=0, image_size=ex["prepare"]["image_size"], num_train=32, num_val=8,
                         num_test=8, classes=ex["data"]["classes"])
        states = [("example UNet (params.yaml) + AdamW", ex), (f"MLP 32→{WIDE}→{WIDE}→1 + AdamW", wide_cfg(tmp))]
        for label, cfg in states:
            work = tmp / f"w{len(results)}"
            results.append((label, measure(trained_runner(cfg, work), tmp, args.rounds)))
            stalls.append((label, {mode: stall(cfg, tmp / f"s{len(stalls)}-{mode}", iters=41, interval=10,
                                               background=mode == "background")
                                   for mode in ("in place", "background")}))
    lines = table(results, stalls, args.rounds)
    print("\n".join(lines))
    if not args.no_write:
        write_section(Path(args.out), lines)


if __name__ == "__main__":
    main()
