"""Stage `train`: train from params.yaml; write the final weights, the run info, metrics and per-step plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.pipeline import PLOTS_TRAIN, PLOTS_VAL, RUN_INFO, TRAIN_METRICS, WEIGHTS, WORK_DIR
from engine.pipeline.start import start_stage


def main(argv: list[str] | None = None) -> None:
    args, cfg = start_stage("train", __doc__, argv, lambda parser: parser.add_argument(
        "--work-dir", default=str(WORK_DIR), help="checkpoints go to WORK_DIR/<params hash>/"))
    from engine.build import build_training

    runner = build_training(cfg, Path(args.work_dir))
    val_metrics = runner.train()
    runner.save_weights(WEIGHTS)
    if runner.is_main_process:
        write_outputs(runner, val_metrics)


def write_outputs(runner: Any, val_metrics: dict[str, float]) -> None:
    """models/train_run.json (what eval needs), metrics/train.json, plots/train.csv and plots/val.csv."""
    from engine.outputs import write_json, write_plots

    write_json(RUN_INFO, {"mlflow_run_id": runner.mlflow_run_id, "params_hash": runner.params_hash,
                          "iterations": runner.iter, "checkpoint": str(runner.last_checkpoint)})
    train_records = [r for r in runner.history if "train/loss" in r]
    final = train_records[-1] if train_records else {}
    headline = runner.headline({k.removeprefix("val/"): v for k, v in val_metrics.items()}) if val_metrics else {}
    write_json(TRAIN_METRICS, {"iterations": runner.iter, "loss": final.get("train/loss"), **headline})
    write_plots(runner.history, PLOTS_TRAIN, "train/", ("loss", "lr", "grad_norm"))
    write_plots(runner.history, PLOTS_VAL, "val/", tuple(headline))
