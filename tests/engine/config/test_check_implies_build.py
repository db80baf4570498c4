"""Check ok => build ok, as a seeded property: random mutations of the shipped params and of each toy project's
params are either refused by `trainline check` (exit 2, no traceback) or build a real Runner on real data; a seeded
sample of those that build also trains for 2 iterations."""

from __future__ import annotations

import copy
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.config import dump_yaml
from engine.config.validate import check_params
from engine.errors import ConfigError
from engine.hooks.hook import Hook, Priority
from tests.conftest import shipped_params
from tests.engine.fixtures import dataset_root, reset_accelerate

TOYS = Path(__file__).resolve().parents[2] / "toys"
MUTATIONS_PER_BASE = 110  # x 3 bases
TRAINED = 20
# Values of every kind a typo or a wrong edit produces.
ODD_VALUES = [None, True, False, 0, 1, -1, 2, 7, 0.5, -0.25, 1e9, float("nan"), "", "x", "16", "6e-5", [], [1],
              ["a"], {}, {"type": "x"}, {"a": 1}]
TYPE_NAMES = ["UNet", "FCN", "SegDataset", "IoUMetric", "SyntheticShapes", "AdamW", "SGD", "LinearLR", "PolyLR",
              "LoggerHook", "CheckpointHook", "IterBasedTrainLoop", "EpochBasedTrainLoop", "ValLoop",
              "digits.model.Net", "digits.data.Digits", "tokens.model.TinyLM", "tokens.data.CharWindows",
              "digits.metric.Accuracy", "tokens.metric.NextToken", "no.such.Thing", "OptimWrapper",
              "AmpOptimWrapper", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR"]


class StopAfter(Hook):
    """Stops training after `n` iterations."""

    priority = Priority.LOWEST

    def __init__(self, n: int) -> None:
        self.n = n

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if runner.iter + 1 >= self.n:
            runner.train_loop.stop_training = True


def _tiny_shapes() -> dict[str, Any]:
    params = shipped_params()
    params["data"].update(root=str(dataset_root()), batch_size=4, val_batch_size=4)
    params["model"].update(base_channels=4, num_stages=2)
    params["train_cfg"].update(max_iters=60, val_interval=30)
    return params


def _toy_params(tmp: Path, toy: str) -> dict[str, Any]:
    """The params a user of that toy writes (as in the own-project end-to-end test), with its data generated."""
    base: dict[str, Any] = {
        "seed": 0, "deterministic": True,
        "optim": {"type": "AdamW", "lr": 0.01, "weight_decay": 0.0001},
        "optim_wrapper": {"type": "OptimWrapper", "accumulative_counts": 1, "clip_grad": None},
        "param_scheduler": [{"type": "LinearLR", "start_factor": 0.1, "begin": 0, "end": 5},
                            {"type": "CosineAnnealingLR", "begin": 5}],
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 20, "val_interval": 10},
        "default_hooks": {"logger": {"type": "LoggerHook", "interval": 5},
                          "checkpoint": {"type": "CheckpointHook", "interval": 10, "max_keep_ckpts": 2}},
        "custom_hooks": [], "eval": {"split": "test", "headline": None},
    }
    root = tmp / toy
    if toy == "digits":
        from digits.data import make_digits  # type: ignore[import-not-found]

        make_digits(str(root), seed=0, per_class=8)
        base.update(prepare={"type": "digits.data.make_digits", "per_class": 8},
                    data={"root": str(root), "classes": [str(i) for i in range(10)],
                          "dataset": {"type": "digits.data.Digits"}, "batch_size": 8, "val_batch_size": 16},
                    model={"type": "digits.model.Net", "hidden": 16}, evaluator={"type": "digits.metric.Accuracy"})
    else:
        from tokens.data import write_text  # type: ignore[import-not-found]

        write_text(root)
        base.update(prepare=None,
                    data={"root": str(root), "classes": None,
                          "dataset": {"type": "tokens.data.CharWindows", "block": 8},
                          "collate_fn": "tokens.data.collate", "batch_size": 8, "val_batch_size": 8},
                    model={"type": "tokens.model.TinyLM", "dim": 8}, evaluator={"type": "tokens.metric.NextToken"})
        base["eval"]["headline"] = ["token_acc"]
    return base


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path (mappings and list items), leaves and inner nodes."""
    out = []
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


def _parent(cfg: Any, path: tuple) -> Any:
    for part in path[:-1]:
        cfg = cfg[part]
    return cfg


def mutate(params: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """One random edit: a type change, an out-of-range number, a removed or renamed key, a swapped `type:`."""
    cfg = copy.deepcopy(params)
    paths = _paths(cfg)
    path = rng.choice(paths)
    parent, key = _parent(cfg, path), path[-1]
    value = parent[key]
    kind = rng.choice(["value", "number", "remove", "rename", "type"])
    if kind == "type":
        typed = [p for p in paths if p[-1] == "type"]
        path = rng.choice(typed)
        parent, key = _parent(cfg, path), path[-1]
        parent[key] = rng.choice(TYPE_NAMES)
    elif kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        parent[key] = rng.choice([0, -1, -value, value * 1000, value + 0.5, 10**12, float("inf")])
    elif kind == "remove":
        del parent[key]
    elif kind == "rename" and isinstance(parent, dict):
        parent[f"{key}{rng.choice(['s', '_', 'x'])}"] = parent.pop(key)
    else:
        parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return cfg, f"{kind} {'.'.join(map(str, path))}"


def _is_shapes(params: dict[str, Any]) -> bool:
    return params["model"]["type"] == "UNet"


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    sys.path.insert(0, str(TOYS))
    tmp = tmp_path_factory.mktemp("toys")
    return {"shapes": _tiny_shapes(), "digits": _toy_params(tmp, "digits"), "tokens": _toy_params(tmp, "tokens")}


def test_every_base_is_valid(bases: dict[str, dict[str, Any]]) -> None:
    for params in bases.values():
        check_params(params)


def test_check_ok_implies_build_ok(bases: dict[str, dict[str, Any]], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.build import build_training, run_prepare

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    rng = random.Random(20261202)
    cli = CliRunner()
    built: list[tuple[str, dict[str, Any]]] = []
    refused = 0
    for name, params in bases.items():
        for i in range(MUTATIONS_PER_BASE):
            cfg_raw, what = mutate(params, rng)
            path = tmp_path / f"{name}-{i}.yaml"
            text = dump_yaml(cfg_raw) if _dumpable(cfg_raw) else None
            if text is None:
                continue
            path.write_text(text, encoding="utf-8")
            result = cli.invoke(main, ["check", "--params", str(path)])
            assert result.exit_code in (0, 2), f"{name}: {what}: exit {result.exit_code}\n{result.output}"
            assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
                f"{name}: {what}: check raised {result.exception!r}")
            if result.exit_code == 2:
                assert "Traceback" not in result.output and result.output.startswith("error: "), result.output
                refused += 1
                continue
            try:
                cfg, _ = check_params(cfg_raw)
            except ConfigError as exc:  # pragma: no cover - the CLI said ok
                raise AssertionError(f"{name}: {what}: check ok in the CLI, refused in process: {exc}") from None
            reset_accelerate()
            if cfg["prepare"] is not None and not Path(cfg["data"]["root"]).exists():
                try:  # as the pipeline does: the prepare stage writes the data the build reads
                    run_prepare(cfg)
                except ConfigError:
                    refused += 1  # the prepare callable refused its arguments, naming the key: nothing was built
                    continue
            try:
                build_training(cfg, tmp_path / "work" / f"{name}-{i}")
            except Exception as exc:  # noqa: BLE001 - any exception here breaks the rule under test
                raise AssertionError(f"{name}: {what}: check ok but the build raised {exc!r}") from exc
            built.append((f"{name}: {what}", cfg))
    assert refused + len(built) >= 300 and refused >= 60 and len(built) >= 60, (refused, len(built))
    for what, cfg in random.Random(7).sample(built, TRAINED):
        reset_accelerate()
        runner = build_training(cfg, tmp_path / "trained" / str(abs(hash(what))))
        runner.register_hook(StopAfter(2))
        try:
            runner.train()
        except Exception as exc:  # noqa: BLE001
            raise AssertionError(f"{what}: check ok, built, but 2 training iterations raised {exc!r}") from exc


def _dumpable(cfg: Any) -> bool:
    """nan/inf floats and non-string keys can't come from a YAML file the way tests write them; skip those."""
    if isinstance(cfg, dict):
        return all(isinstance(k, (str, int)) and _dumpable(v) for k, v in cfg.items())
    if isinstance(cfg, list):
        return all(_dumpable(v) for v in cfg)
    return not (isinstance(cfg, float) and not math.isfinite(cfg))
