"""DVC stage `train`: train the model from params.yaml, write the final weights, metrics and per-step plots."""

from __future__ import annotations

from pathlib import Path

from engine.entry import run_main, start_stage

WEIGHTS = Path("models/model.safetensors")
RUN_INFO = Path("models/train_run.json")
METRICS = Path("metrics/train.json")
PLOTS_TRAIN = Path("plots/train.csv")
PLOTS_VAL = Path("plots/val.csv")


def main(argv: list[str] | None = None) -> None:
    args, cfg = start_stage("train", __doc__, argv, lambda parser: parser.add_argument(
        "--work-dir", default="work_dirs", help="checkpoints go to WORK_DIR/<params hash>/"))
    from engine.outputs import write_json, write_plots
    from engine.runner import Runner
    from engine.seg.metrics import IoUMetric

    evaluator = IoUMetric(len(cfg["data"]["classes"]), cfg["data"]["classes"])
    runner = Runner(cfg, Path(args.work_dir), evaluator=evaluator)
    try:
        val_metrics = runner.train()
    except BaseException:
        for hook in runner.hooks:  # the run stays findable, marked failed; checkpoints stay for the resume
            if hasattr(hook, "fail"):
                hook.fail()
        raise
    runner.save_weights(WEIGHTS)
    if runner.is_main_process:
        write_json(RUN_INFO, {"mlflow_run_id": runner.mlflow_run_id, "params_hash": runner.params_hash,
                              "iterations": runner.iter, "checkpoint": str(runner.last_checkpoint)})
        train_records = [r for r in runner.history if "train/loss" in r]
        final = train_records[-1] if train_records else {}
        write_json(METRICS, {"iterations": runner.iter, "loss": final.get("train/loss"),
                             **{k.removeprefix("val/"): v for k, v in val_metrics.items() if "." not in k}})
        write_plots(runner.history, PLOTS_TRAIN, "train/", ("loss", "lr", "grad_norm"))
        write_plots(runner.history, PLOTS_VAL, "val/", ("mIoU", "mAcc", "aAcc"))


if __name__ == "__main__":
    run_main(main)
