"""`trainline init`: set up Trainline in a user's own git repository (params.yaml, dvc.yaml, DVC, ignores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from engine.checkpoint import atomic_write_text
from engine.errors import UserError

# Written when no component is named: the bundled shapes example, so the new files pass `trainline check` and
# `dvc repro` runs before anything is edited; each line says what to point at your own classes.
_EXAMPLE = {
    "prepare": "SyntheticShapes\n  image_size: 32\n  num_train: 256\n  num_val: 32\n  num_test: 64",
    "dataset": "SegDataset",
    "model": "UNet\n  base_channels: 8\n  num_stages: 3",
    "evaluator": "IoUMetric",
    "classes": "[background, circle, square, triangle]",
    "root": "data/shapes",
}

_PARAMS = """\
# Trainline params: every key, its default and meaning: `trainline check --print` and docs/config.md.
# Point `model`, `data.dataset`, `evaluator` (and `prepare`) at your own classes by dotted path
# (`my_pkg.models.Net`); your package is imported from this folder, no install needed.
seed: 0
deterministic: true
# Where training starts: `resume: auto` continues from the newest intact checkpoint of the same params; `load_from`
# starts from other weights (fine-tuning; `load_strict: true` demands an exact match of keys and shapes).
resume: auto
load_from: null
load_strict: false

# The callable the prepare stage runs to write data.root (offered `root`, `seed`, `classes` when its signature names
# them). Data that is already there: `prepare: null`, and the train stage depends on data.root as it is.
prepare:{prepare}

data:
  root: {root}
  # Names offered as `classes` / `num_classes` to the components that ask for them (null: they set their own).
  classes: {classes}
  # Built once per split with split=train|val|test (plus root/seed/classes/num_classes when asked for).
  dataset:
    type: {dataset}
  collate_fn: null      # dotted path of a function that batches items; null = torch's default collate
  batch_size: 16
  val_batch_size: 64
  num_workers: 0

# Called as model(batch, mode="loss") -> dict of losses (keys containing "loss" are summed) and
# model(batch, mode="predict") -> what the evaluator scores.
model:
  type: {model}

# reset(); process(batch, outputs); compute() -> dict of metrics. Its `headline` attribute (or eval.headline)
# picks the metrics shown, written to metrics/*.json, plotted and compared.
evaluator:
  type: {evaluator}

optim:
  type: AdamW
  lr: 0.001
  weight_decay: 0.0001

# OptimWrapper (fp32) or AmpOptimWrapper (mixed precision); accumulation and clipping.
optim_wrapper:
  type: OptimWrapper
  accumulative_counts: 1
  clip_grad: null

param_scheduler:
  - type: LinearLR      # warm-up
    start_factor: 0.001
    begin: 0
    end: 20
  - type: CosineAnnealingLR   # `end` defaults to the end of training
    begin: 20

train_cfg:
  type: IterBasedTrainLoop
  max_iters: 200
  val_interval: 100
val_cfg:
  type: ValLoop
test_cfg:
  type: TestLoop

default_hooks:
  logger: {{type: LoggerHook, interval: 10}}
  checkpoint: {{type: CheckpointHook, interval: 100, max_keep_ckpts: 2}}
custom_hooks: []

mlflow:
  experiment_name: {experiment}

# Processes and machines (docs/scale-out.md): with num_processes > 1 the train and eval stages start themselves
# through `accelerate launch` (GPUs, or gloo processes on a CPU); `dvc exp run -S dist.num_processes=2` works.
dist:
  num_processes: 1
  num_machines: 1
  config_file: null     # or your own `accelerate config` file

eval:
  split: test
  headline: null
"""

_DVC = """\
# Trainline pipeline: each stage reads only its own params, so only what changed reruns.
stages:
{prepare_stage}  train:
    cmd: trainline stage train
    deps:
{train_deps}    params:
      - seed
      - deterministic
      - load_from
      - load_strict
      - data
      - model
      - evaluator
      - optim
      - optim_wrapper
      - param_scheduler
      - train_cfg
      - val_cfg
      - default_hooks
      - custom_hooks
      - mlflow
      - eval.headline
      # Of `dist`, only what changes the weights: where processes meet (machines, ports) does not retrain.
      - dist.num_processes
      - dist.config_file
    outs:
      # Cached, not `cache: false`: DVC's run-cache skips any stage with an uncached plain output.
      - models/model.safetensors
      - models/train_run.json
    metrics:
      - metrics/train.json:
          cache: false
    plots:
      - plots/train.csv:
          cache: false
      - plots/val.csv:
          cache: false

  eval:
    cmd: trainline stage eval
    deps:
{eval_deps}      - models/model.safetensors
      - models/train_run.json
    params:
      - seed
      - deterministic
      - data
      - model
      - evaluator
      - test_cfg
      - eval
      - mlflow
    # Cached (DVC's run-cache skips a stage with an uncached plain output).
    outs:
      - metrics/per_class.md
      - metrics/per_class.json
    metrics:
      - metrics/eval.json:
          cache: false
plots:
  - loss:
      x: step
      y:
        plots/train.csv: loss
  - learning_rate:
      x: step
      y:
        plots/train.csv: lr
"""

_PREPARE_STAGE = """\
  prepare:
    cmd: trainline stage prepare
    deps:
{deps}    params:
      - seed
      - prepare
      - data.root
      - data.classes
    outs:
      - {root}

"""

_IGNORES = ("/mlflow.db", "/mlruns/", "/mlartifacts/", "/work_dirs/", "__pycache__/")


def _local_packages(root: Path, names: list[str]) -> list[str]:
    """The project's own top-level packages the named components live in (what training depends on)."""
    found = {n.split(".")[0] for n in names if "." in n}
    found |= {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
              and not p.name.startswith(".")}
    return sorted(name for name in found if (root / name).is_dir() or (root / f"{name}.py").is_file())


def _dep_lines(items: list[str]) -> str:
    return "".join(f"      - {item}\n" for item in items)


def _git_root(root: Path) -> bool:
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    return result.returncode == 0


def _dvc_init(root: Path) -> None:
    # The dvc installed beside this Python first: a venv's bin directory need not be on PATH.
    beside = Path(sys.executable).with_name("dvc")
    command = [str(beside) if beside.is_file() else "dvc", "init", "-q"]
    try:
        result = subprocess.run(command, cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError("dvc: not found; install Trainline with its dependencies (pip install trainline)") from None
    if result.returncode != 0:
        raise UserError(f"dvc init failed in {root}: {result.stderr.strip() or result.stdout.strip()}")


def init_project(root: Path, *, model: str | None = None, dataset: str | None = None, evaluator: str | None = None,
                 prepare: str | None = None, data_root: str | None = None, no_prepare: bool = False,
                 force: bool = False) -> list[str]:
    """Write params.yaml and dvc.yaml into `root`, `dvc init` if needed, extend .gitignore; returns what was done.
    Nothing is written when a file would be overwritten without `force`."""
    root = root.resolve()
    if not _git_root(root):
        raise UserError(f"{root}: not inside a git repository; run `git init` first (DVC experiments need git)")
    for name in ("params.yaml", "dvc.yaml"):
        if (root / name).exists() and not force:
            raise UserError(f"{root / name}: already exists; edit it, or pass --force to replace it")
    named = any(v is not None for v in (model, dataset, evaluator, prepare))
    example = not named
    values = {
        "model": model or (_EXAMPLE["model"] if example else "my_pkg.models.Net"),
        "dataset": dataset or (_EXAMPLE["dataset"] if example else "my_pkg.data.Dataset"),
        "evaluator": evaluator or (_EXAMPLE["evaluator"] if example else "my_pkg.metrics.Evaluator"),
        "classes": _EXAMPLE["classes"] if example else "null",
        "root": data_root or (_EXAMPLE["root"] if example else "data"),
        "experiment": root.name,
    }
    prepare_type = None if no_prepare else (prepare or (_EXAMPLE["prepare"] if example else None))
    values["prepare"] = f"\n  type: {prepare_type}" if prepare_type else " null"
    packages = _local_packages(root, [values["model"], values["dataset"], values["evaluator"], prepare or ""])
    prepare_stage = ""
    if prepare_type:
        prepare_deps = packages if prepare and "." in prepare else []
        prepare_stage = _PREPARE_STAGE.format(deps=_dep_lines(prepare_deps) or "      - params.yaml\n",
                                              root=values["root"])
    data_deps = [values["root"], *packages]
    done = []
    if not (root / ".dvc").is_dir():  # first: if DVC cannot start, nothing else is written
        _dvc_init(root)
        done.append("initialised DVC (.dvc/)")
    atomic_write_text(root / "params.yaml", _PARAMS.format(**values))
    atomic_write_text(root / "dvc.yaml", _DVC.format(prepare_stage=prepare_stage, train_deps=_dep_lines(data_deps),
                                                     eval_deps=_dep_lines(data_deps)))
    done += ["wrote params.yaml", "wrote dvc.yaml"]
    gitignore = root / ".gitignore"
    have = gitignore.read_text(encoding="utf-8").splitlines() if gitignore.is_file() else []
    missing = [line for line in _IGNORES if line not in have]
    if missing:
        prefix = "\n" if have and have[-1] != "" else ""
        with gitignore.open("a", encoding="utf-8") as handle:
            handle.write(prefix + "\n".join(missing) + "\n")
        done.append(f"added {', '.join(missing)} to .gitignore")
    return done
