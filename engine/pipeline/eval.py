"""Stage `eval`: score the trained weights on `eval.split`; the MLflow hook adds the metrics to the training's run."""

from __future__ import annotations

import json
import logging
from typing import Any

from engine.pipeline import EVAL_METRICS, RUN_INFO, WEIGHTS, WORK_DIR
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
    result = eval_record(runner.headline(metrics), metrics, cfg["eval"]["split"])
    write_json(EVAL_METRICS, result)
    logging.getLogger("trainline").info("%s metrics:\n%s", cfg["eval"]["split"], metrics_table(result))


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
