"""Stage `eval`: score the trained weights on `eval.split`; the MLflow hook adds the metrics to the training's run."""

from __future__ import annotations

import json
import logging
from typing import Any

from engine.pipeline import CONFUSION_PLOT, EVAL_METRICS, EVAL_TABLES, RUN_INFO, WEIGHTS, WORK_DIR
from engine.pipeline.start import start_stage


def main(argv: list[str] | None = None) -> None:
    _, cfg = start_stage("eval", __doc__, argv)
    from engine.build import build_testing
    from engine.cli.tables import metrics_table
    from engine.errors import UserError
    from engine.outputs import write_json

    if not RUN_INFO.is_file():
        raise UserError(f"{RUN_INFO}: not found; run the train stage first (dvc repro train)")
    run_info = json.loads(RUN_INFO.read_text(encoding="utf-8"))
    runner = build_testing(cfg, WORK_DIR)
    runner.mlflow_run_id = run_info.get("mlflow_run_id")
    runner.trained_iters = int(run_info.get("iterations", 0))
    metrics = runner.test(WEIGHTS)
    if not runner.is_main_process:
        return
    headline = runner.headline(metrics)
    result = eval_record(headline, metrics, cfg["eval"]["split"])
    write_json(EVAL_METRICS, result)
    write_eval_files(runner.evaluator, metrics, list(headline))
    logging.getLogger("trainline").info("%s metrics:\n%s", cfg["eval"]["split"], metrics_table(result))


def write_eval_files(evaluator: Any, metrics: dict[str, float], headline: list[str]) -> None:
    """`metrics/per_class.md` and `.json` (the dotted metrics as a table; empty for an evaluator without them)
    and, for an evaluator that keeps a `confusion_matrix` (square; `class_names` label it), the row-normalised plot
    `plots/confusion_matrix.png`. The MLflow run gets the evaluator's own copies (`artifacts()`)."""
    from engine.run_artifacts import write_confusion_matrix, write_per_class

    write_per_class(metrics, EVAL_TABLES, headline)
    matrix = getattr(evaluator, "confusion_matrix", None)
    if matrix is None:
        return
    array = matrix.detach().cpu().numpy() if hasattr(matrix, "detach") else matrix
    names = getattr(evaluator, "class_names", None) or [str(i) for i in range(len(array))]
    write_confusion_matrix(CONFUSION_PLOT, array, names)


def eval_record(headline: dict[str, float], metrics: dict[str, float], split: str) -> dict[str, Any]:
    """metrics/eval.json: the headline metrics, the split, and dotted metrics (`IoU.circle`) as per-class tables
    (`per_class.circle.IoU`)."""
    per_class: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if "." in key:
            metric, _, name = key.partition(".")
            per_class.setdefault(name, {})[metric] = value
    record: dict[str, Any] = {**headline, "split": split}
    if per_class:
        record["per_class"] = per_class
    return record
