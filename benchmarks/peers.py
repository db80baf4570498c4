"""Engine overhead against its peers: plain PyTorch, a hand-written Accelerate loop, the engine (default hooks + MLflow
every 10 iterations), PyTorch Lightning and MMEngine on three models, as wall-clock ratios to the plain loop; and
whether each arm's weights after 600 steps are `torch.equal` to the plain loop's.

Runs in the benchmark venv (`make bench` builds `.bench-venv` with lightning and mmengine):
`.bench-venv/bin/python -m benchmarks.peers`. Arms run interleaved (A B C D E, A B C D E, ...) in one process, same
model initialisation, data, order and seed; each figure is the median over rounds of the wall time per iteration from
the end of the warm-up to the last iteration. Writes the "Peers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.docs_section import write_section  # noqa: E402
from benchmarks.instructions import MLP, regression  # noqa: E402
from benchmarks.peer_arms import Clock, EpochSampler, lightning_fit, mmengine_fit, total_loss  # noqa: E402
from engine.config import load_params, merge  # noqa: E402
from engine.config.validate import check_params  # noqa: E402

ARMS = {"plain": "plain PyTorch loop", "accelerate": "hand-written Accelerate loop",
        "engine": "engine, default hooks + MLflow every 10", "lightning": "Lightning Trainer",
        "mmengine": "MMEngine Runner"}
# Width of the MLP 32→W→W→1 (batch 64) whose plain step takes ≈1.3 ms on one thread of these machines.
MID_WIDTH = 512
WEIGHT_STEPS = 600


@dataclass
class Workload:
    """One model with its data, batch size, optimizer and the engine config that trains the same."""

    name: str
    model: Callable[[], torch.nn.Module]
    dataset: Callable[[], Any]
    batch_size: int
    optimizer: Callable[[Any], torch.optim.Optimizer]
    engine_cfg: Callable[[int, Path], dict]
    steps: int
    warmup: int
    seed: int = 42
    # "engine": the engine's order (see EpochSampler); "reference": one `DataLoader(shuffle=True)` with a seeded
    # generator reused epoch after epoch, the plain loop of performance-anchors §1c
    order: str = "engine"


def _engine_raw(steps: int, work: Path, overrides: dict) -> dict:
    hooks = {"checkpoint": None, "logger": {"type": "LoggerHook", "interval": 10, "progress_bar": False}}
    return merge({"train_cfg": {"_delete_": True, "type": "IterBasedTrainLoop", "max_iters": steps,
                                "val_interval": 10**6},
                  "default_hooks": hooks, "custom_hooks": [], "resume": False,
                  "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}"}, **overrides},
                 load_params(ROOT / "params.yaml"))


def mlp_workload(name: str, width: int, steps: int, warmup: int) -> Workload:
    def engine_cfg(n: int, work: Path) -> dict:
        raw = _engine_raw(n, work, {
            "prepare": None,
            "data": {"root": str(work / "data"), "batch_size": 64,
                     "dataset": {"_delete_": True, "type": "benchmarks.instructions.regression"}},
            "evaluator": {"type": "benchmarks.instructions.MSE"},
            "optim": {"_delete_": True, "type": "SGD", "lr": 0.01},
            "optim_wrapper": {"type": "OptimWrapper", "accumulative_counts": 1, "clip_grad": None},
            "param_scheduler": []})
        raw["model"] = {"type": "benchmarks.instructions.MLP", "width": width}
        return check_params(raw)[0]

    return Workload(name, lambda: MLP(width), regression, 64, lambda p: torch.optim.SGD(p, lr=0.01), engine_cfg,
                    steps, warmup)


def example_workload(data_root: Path, steps: int, warmup: int) -> Workload:
    """The example of params.yaml (UNet, 48×48, batch 16, AdamW, its LR schedule in the engine arm) on 512 generated
    training images; validation off."""
    from engine.build import build_model, seed_everything
    from engine.data import build_dataset

    def engine_cfg(n: int, work: Path) -> dict:
        raw = _engine_raw(n, work, {"prepare": {"num_train": 512, "num_val": 8, "num_test": 8},
                                    "data": {"root": str(data_root)}})
        return check_params(raw)[0]

    cfg = engine_cfg(steps, data_root)

    def model() -> torch.nn.Module:
        seed_everything(cfg)  # as the engine's build: the seed, then the model
        return build_model(cfg)

    optim = cfg["optim"]
    return Workload("example UNet (params.yaml, 48×48, batch 16)", model, lambda: build_dataset(cfg, "train"),
                    cfg["data"]["batch_size"], lambda p: torch.optim.AdamW(p, lr=optim["lr"], betas=optim["betas"],
                                                                          weight_decay=optim["weight_decay"]),
                    engine_cfg, steps, warmup, cfg["seed"])


# -- the arms: each returns (seconds per iteration, final weights) -------------------------------------------------

def _seed(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed, deterministic=True)  # what the engine's build does first, so every arm runs with the same flags


def _loader(w: Workload, dataset: Any) -> DataLoader:
    if w.order == "reference":
        return DataLoader(dataset, batch_size=w.batch_size, shuffle=True, generator=torch.Generator().manual_seed(2))
    return DataLoader(dataset, batch_size=w.batch_size, sampler=EpochSampler(len(dataset), w.seed))


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def plain(w: Workload, steps: int, work: Path) -> tuple[float, dict]:
    _seed(w.seed)
    model = w.model()
    opt = w.optimizer(model.parameters())
    loader, clock, it = _loader(w, w.dataset()), Clock(w.warmup), 0
    while it < steps:
        for batch in loader:
            clock.start(it)
            loss = total_loss(model(batch, mode="loss"))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            clock.stop()
            it += 1
            if it == steps:
                break
    return clock.per_step(steps), _weights(model)


def _reset_accelerate() -> None:
    """Accelerate keeps process-wide state; each arm starts from none, as a fresh process would."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def accelerate(w: Workload, steps: int, work: Path) -> tuple[float, dict]:
    from accelerate import Accelerator

    _reset_accelerate()
    _seed(w.seed)
    accelerator = Accelerator(cpu=True)
    model = w.model()
    model, opt, loader = accelerator.prepare(model, w.optimizer(model.parameters()), _loader(w, w.dataset()))
    clock, it = Clock(w.warmup), 0
    while it < steps:
        for batch in loader:
            clock.start(it)
            with accelerator.accumulate(model):
                accelerator.backward(total_loss(model(batch, mode="loss")))
                opt.step()
                opt.zero_grad()
            clock.stop()
            it += 1
            if it == steps:
                break
    return clock.per_step(steps), _weights(accelerator.unwrap_model(model))


def engine(w: Workload, steps: int, work: Path) -> tuple[float, dict]:
    from engine.build import build_training
    from engine.hooks.hook import Hook

    clock = Clock(w.warmup)

    class Timer(Hook):
        def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
            clock.start(runner.iter)

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            clock.stop()

    _reset_accelerate()
    runner = build_training(w.engine_cfg(steps, work), work)
    runner.val_loop = None
    runner.train_loop.val_loop = None
    runner.register_hook(Timer(), "LOWEST")
    runner.train()
    return clock.per_step(steps), {k: v.detach().clone() for k, v in runner.model_weights().items()}


def lightning(w: Workload, steps: int, work: Path) -> tuple[float, dict]:
    _seed(w.seed)
    model, clock = w.model(), Clock(w.warmup)
    lightning_fit(model, _loader(w, w.dataset()), steps, w.optimizer, clock, work)
    return clock.per_step(steps), _weights(model)


def mmengine(w: Workload, steps: int, work: Path) -> tuple[float, dict]:
    _seed(w.seed)
    model, clock = w.model(), Clock(w.warmup)
    mmengine_fit(model, w.dataset(), w.batch_size, w.seed, steps, w.optimizer, clock, work)
    return clock.per_step(steps), _weights(model)


RUNNERS = {"plain": plain, "accelerate": accelerate, "engine": engine, "lightning": lightning, "mmengine": mmengine}


# -- the driver ---------------------------------------------------------------------------------------------------

def wall(w: Workload, rounds: int, tmp: Path) -> dict[str, list[float]]:
    """Seconds per iteration of every arm, per round, the arms interleaved within each round."""
    times: dict[str, list[float]] = {arm: [] for arm in RUNNERS}
    for r in range(rounds):
        for arm, run in RUNNERS.items():
            work = tmp / f"{arm}-{r}"
            work.mkdir(parents=True)
            times[arm].append(run(w, w.steps, work)[0])
    return times


def weights_check(w: Workload, tmp: Path, arms: tuple[str, ...] = tuple(RUNNERS)) -> dict[str, bool]:
    """Whether each arm's weights after WEIGHT_STEPS steps are `torch.equal` to the plain loop's."""
    finals = {}
    for arm in ("plain", *[a for a in arms if a != "plain"]):
        run = RUNNERS[arm]
        work = tmp / f"weights-{w.order}-{arm}"
        work.mkdir(parents=True)
        finals[arm] = run(w, WEIGHT_STEPS, work)[1]
    base = finals["plain"]
    return {arm: base.keys() == f.keys() and all(torch.equal(base[k], f[k]) for k in base)
            for arm, f in finals.items() if arm != "plain"}


def table(results: list[tuple[Workload, dict[str, list[float]]]], equal: dict[str, bool],
          reference: dict[str, bool], rounds: str) -> list[str]:
    import accelerate
    import lightning
    import mmengine

    lines = ["## Peers", "",
             "Measured by `python -m benchmarks.peers` in the benchmark venv that `make bench` builds (`.bench-venv`: "
             f"torch {torch.__version__}, accelerate {accelerate.__version__}, lightning {lightning.__version__}, "
             f"mmengine {mmengine.__version__}); {platform.processor() or platform.machine()}, {os.cpu_count()} "
             "cores, 1 torch thread. Arms interleaved in one process, same initial weights, data, batch order (the "
             "engine's: epoch e shuffled by a generator seeded with seed + e) and seed; median over rounds of the "
             f"wall time per iteration after the warm-up ({rounds}). The engine runs its default hooks with MLflow "
             "logging every 10 iterations to a fresh SQLite store, checkpoints off; Lightning with logger, "
             "checkpointing, progress bar, model summary and sanity validation off; MMEngine's Runner with an "
             "IterBasedTrainLoop, logger and checkpoint hooks off, an infinite sampler.", ""]
    header = "| arm | " + " | ".join(f"{w.name}: ms / iteration | ratio" for w, _ in results) + " |"
    lines += [header, "|---|" + "---|---|" * len(results)]
    medians = [{arm: statistics.median(v) for arm, v in times.items()} for _, times in results]
    for arm in RUNNERS:
        cells = []
        for m in medians:
            cells += [f"{m[arm] * 1000:.3f}", f"{m[arm] / m['plain']:.3f}"]
        lines.append(f"| {ARMS[arm]} | " + " | ".join(cells) + " |")
    lines += [""]
    for i, limit in ((1, 0.03), (2, 0.01)):  # the targets: ≤ 3 % on the ≈1.3 ms model, ≤ 1 % on the example
        over = medians[i]["engine"] / medians[i]["plain"] - 1
        verdict = "met" if over <= limit else f"missed by {(over - limit) * 100:.1f} points"
        lines.append(f"- Target for the engine on the {results[i][0].name}: ≤ +{limit:.0%} wall time over the plain "
                     f"loop; measured {over:+.1%}: {verdict}.")
    lines += ["", f"Weights after {WEIGHT_STEPS} steps of the tiny MLP, `torch.equal` to the plain loop's: "
              + ", ".join(f"{ARMS[arm]} {'yes' if ok else 'no'}" for arm, ok in equal.items()) + ". With the "
              "plain loop of performance-anchors §1c instead (one `DataLoader(shuffle=True)` with a seeded generator, "
              "reused epoch after epoch; the engine and MMEngine build their own loaders and are not in this check): "
              + ", ".join(f"{ARMS[arm]} {'yes' if ok else 'no'}" for arm, ok in reference.items()) + ".", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--example-rounds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from engine.seg.synthetic import generate_dataset

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        example = example_workload(tmp / "data", steps=60, warmup=10)
        cfg = example.engine_cfg(example.steps, tmp / "data")
        generate_dataset(tmp / "data", seed=0, image_size=cfg["prepare"]["image_size"], num_train=512, num_val=8,
                         num_test=8, classes=cfg["data"]["classes"])
        tiny = mlp_workload("tiny MLP 32→16→16→1", 16, steps=300, warmup=20)
        mid = mlp_workload(f"MLP 32→{MID_WIDTH}→{MID_WIDTH}→1", MID_WIDTH, steps=200, warmup=20)
        equal = weights_check(tiny, tmp / "weights")
        reference = weights_check(replace(tiny, order="reference"), tmp / "weights", ("accelerate", "lightning"))
        plan = [(tiny, args.rounds), (mid, args.rounds), (example, args.example_rounds)]
        results = [(w, wall(w, n, tmp / f"wall{i}")) for i, (w, n) in enumerate(plan)]
    rounds = (f"tiny and mid MLP: {tiny.steps} / {mid.steps} iterations, {tiny.warmup} warm-up, {args.rounds} rounds; "
              f"example: {example.steps} iterations, {example.warmup} warm-up, {args.example_rounds} rounds")
    lines = table(results, equal, reference, rounds)
    print("\n".join(lines))
    if not args.no_write:
        write_section(Path(args.out), lines)


if __name__ == "__main__":
    main()
