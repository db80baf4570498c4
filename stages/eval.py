"""DVC stage `eval`: score the trained weights on the test split and record the metrics on the training's run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from engine.entry import run_main, start_stage

WEIGHTS = Path("models/model.safetensors")
RUN_INFO = Path("models/train_run.json")
METRICS = Path("metrics/eval.json")


def main(argv: list[str] | None = None) -> None:
    _, cfg = start_stage("eval", __doc__, argv)
    from engine.errors import UserError
    from engine.outputs import write_json
    from engine.report import metrics_table
    from engine.runner import Runner
    from engine.seg.metrics import IoUMetric

    if not RUN_INFO.is_file():
        raise UserError(f"{RUN_INFO}: not found; run the train stage first (dvc repro train)")
    run_info = json.loads(RUN_INFO.read_text(encoding="utf-8"))
    classes = cfg["data"]["classes"]
    runner = Runner(cfg, Path("work_dirs"), mode="test", evaluator=IoUMetric(len(classes), classes))
    metrics = runner.test(WEIGHTS)
    if not runner.is_main_process:
        return
    summary = {k: metrics[k] for k in ("aAcc", "mIoU", "mAcc")}
    per_class = {name: {"IoU": metrics[f"IoU.{name}"], "Acc": metrics[f"Acc.{name}"]} for name in classes}
    write_json(METRICS, {**summary, "split": cfg["eval"]["split"], "per_class": per_class})
    _log_to_run(cfg, run_info, metrics)
    logging.getLogger("trainline").info("%s metrics:\n%s", cfg["eval"]["split"], metrics_table(summary, per_class))


def _log_to_run(cfg: dict, run_info: dict, metrics: dict[str, float]) -> None:
    """Eval metrics land on the training's MLflow run (`test/<metric>`, step = trained iterations)."""
    import math
    import time

    from mlflow.entities import Metric

    from engine import tracking

    run_id = run_info.get("mlflow_run_id")
    if not run_id:
        return
    uri = tracking.tracking_uri(cfg)
    tracking.check_reachable(uri)
    client = tracking.client(uri)
    now, step = int(time.time() * 1000), int(run_info.get("iterations", 0))
    split = cfg["eval"]["split"]
    batch = [Metric(f"{split}/{k}", float(v), now, step) for k, v in metrics.items() if math.isfinite(v)]
    client.log_batch(run_id, metrics=batch)
    client.set_tag(run_id, "eval.split", split)
    if METRICS.is_file():
        client.log_artifact(run_id, str(METRICS), artifact_path="metrics")


if __name__ == "__main__":
    run_main(main)
