"""The three DVC stages as functions (`trainline stage prepare|train|eval`, or `python -m stages.<name>`), and the
files they hand to DVC."""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path("models/model.safetensors")
RUN_INFO = Path("models/train_run.json")
TRAIN_METRICS = Path("metrics/train.json")
EVAL_METRICS = Path("metrics/eval.json")
EVAL_TABLES = Path("metrics")  # per_class.md, per_class.json
CONFUSION_PLOT = Path("plots/confusion_matrix.png")
PLOTS_TRAIN = Path("plots/train.csv")
PLOTS_VAL = Path("plots/val.csv")
WORK_DIR = Path("work_dirs")
