"""Stage `train`: train from params.yaml; write the final weights, the run info, metrics and per-step plots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from engine.pipeline import PLOTS_TRAIN, PLOTS_VAL, RUN_INFO, TRAIN_METRICS, WEIGHTS, WORK_DIR
from engine.pipeline.start import start_stage


def main(argv: list[str] | None = None) -> None:
    args, cfg = start_stage("train", __doc__, argv, lambda parser: parser.add_argument(
        "--work-dir", default=str(WORK_DIR), help="checkpoints go to WORK_DIR/<params hash>/"))
    from engine.config.schema import training_hash
    from engine.errors import UserError
    from engine.params_watch import check_unchanged, snapshot
    from engine.parent_watch import watch_parent
    from engine.run_lock import hold_run_lock
    from engine.signals import request_stop, stop_on_signals

    read_params = snapshot(args.params)
    # The Runner puts checkpoints in the same directory; locked before anything heavy is built, so a second trainer
    # of the same params is refused at once.
    work_dir = Path(args.work_dir) / training_hash(cfg)
    with hold_run_lock(work_dir), stop_on_signals():
        watch_parent(request_stop)
        runner, val_metrics = _train(cfg, Path(args.work_dir))
        # DVC writes the params file's values of *now* into dvc.lock when the stage ends: refuse before writing any
        # output if they are no longer the ones trained with.
        try:
            check_unchanged(args.params, read_params)
        except UserError:
            if runner.is_main_process:  # the live progress files of a run whose results are refused go too
                for path in (TRAIN_METRICS, PLOTS_TRAIN, PLOTS_VAL):
                    path.unlink(missing_ok=True)
            raise
        runner.save_weights(WEIGHTS)
        if runner.is_main_process:
            write_outputs(runner, val_metrics)


def _train(cfg: dict[str, Any], work_root: Path) -> tuple[Any, dict[str, float]]:
    """Build and train; a graceful stop (signal, or dvc gone) ends the run as KILLED, says where the checkpoint is
    and exits with the signal's code."""
    from engine.build import build_training
    from engine.hooks.progress_outputs_hook import ProgressOutputsHook
    from engine.signals import TrainingInterrupted, report

    runner = build_training(cfg, work_root)
    runner.register_hook(ProgressOutputsHook(write_progress))
    try:
        return runner, runner.train()
    except TrainingInterrupted as exc:
        if runner.is_main_process:
            report(exc)
        sys.exit(exc.exit_code)


def write_outputs(runner: Any, val_metrics: dict[str, float]) -> None:
    """models/train_run.json (what eval needs), then the progress files in their final state."""
    from engine.outputs import write_json

    write_json(RUN_INFO, {"mlflow_run_id": runner.mlflow_run_id, "params_hash": runner.params_hash,
                          "iterations": runner.iter, "checkpoint": str(runner.last_checkpoint)})
    write_progress(runner, val_metrics)


def write_progress(runner: Any, val_metrics: dict[str, float]) -> None:
    """metrics/train.json, plots/train.csv and plots/val.csv as of now (each atomically): after every validation
    while training runs (ProgressOutputsHook), and once more at the end. `val_metrics` with or without `val/`."""
    from engine.outputs import write_json, write_plots

    train_records = [r for r in runner.history if "train/loss" in r]
    final = train_records[-1] if train_records else {}
    headline = runner.headline({k.removeprefix("val/"): v for k, v in val_metrics.items()}) if val_metrics else {}
    write_json(TRAIN_METRICS, {"iterations": runner.iter, "loss": final.get("train/loss"), **headline})
    write_plots(runner.history, PLOTS_TRAIN, "train/", ("loss", "lr", "grad_norm"))
    write_plots(runner.history, PLOTS_VAL, "val/", tuple(headline))
