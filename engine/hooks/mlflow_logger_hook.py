"""MLflowLoggerHook: one MLflow run per training, with params, tags, batched metrics and the final checkpoint; the
eval stage's test metrics land on that same run."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from engine import tracking
from engine.config import dump_yaml
from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike

_RUN_ID_FILE = "mlflow_run_id"


class MLflowLoggerHook(Hook):
    """Only the main process talks to MLflow. Metrics are buffered and sent with `log_batch` at validation,
    checkpoints and the end (one sqlite call per metric would cost ~2 ms each). A resumed training continues the
    run recorded in its work dir instead of opening a new one."""

    priority = Priority.BELOW_NORMAL

    def __init__(self, flush_every: int = 500) -> None:
        self.flush_every = flush_every
        self.run_id: str | None = None
        self._client: Any = None
        self._buffer: list[Any] = []
        self._warned_nonfinite = False
        self._headline_tagged = False
        # Continuing a run: its status before this process touched it, and the (key, step) points it already holds
        # (a resumed training recomputes the steps between its checkpoint and the kill; each is logged once).
        self._previous_status: str | None = None
        self._resumed_iter = 0
        self._logged: set[tuple[str, int]] = set()

    def before_run(self, runner: RunnerLike) -> None:
        if not runner.is_main_process:
            return
        cfg = runner.cfg
        if runner.mode == "test":
            # Testing adds to the training's run (the eval stage sets its id); without one there is nothing to add to.
            if runner.mlflow_run_id is None:
                return
            uri = tracking.tracking_uri(cfg)
            tracking.check_reachable(uri)
            self._client, self.run_id = tracking.client(uri), runner.mlflow_run_id
            return
        uri = tracking.tracking_uri(cfg)
        tracking.check_reachable(uri)
        self._client = tracking.client(uri)
        id_file = runner.work_dir / _RUN_ID_FILE
        if cfg["resume"] is not False and _has_checkpoints(runner.work_dir) and id_file.is_file():
            self.run_id = id_file.read_text(encoding="utf-8").strip()
            self._previous_status = self._client.get_run(self.run_id).info.status
            self._client.update_run(self.run_id, status="RUNNING")
        else:
            exp_id = tracking.experiment_id(self._client, cfg["mlflow"]["experiment_name"], uri)
            tags = tracking.run_tags(tracking.project_root(), runner.run_tags())
            name = cfg["mlflow"]["run_name"] or os.environ.get("DVC_EXP_NAME") or None
            self.run_id = self._client.create_run(exp_id, run_name=name, tags=tags).info.run_id
            runner.work_dir.mkdir(parents=True, exist_ok=True)
            id_file.write_text(self.run_id, encoding="utf-8")
        self._log_params(cfg)
        runner.add_scalar_sink(self._collect)
        runner.mlflow_run_id = self.run_id

    def _log_params(self, cfg: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in sorted(tracking.flat_params(cfg).items())]
        for start in range(0, len(params), 100):  # log_batch takes at most 100 params per call
            self._client.log_batch(self.run_id, params=params[start:start + 100])

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Note what the continued run already holds past the checkpoint, so those points are not logged again."""
        self._resumed_iter = int(checkpoint["meta"]["iter"])
        if self._client is None or self.run_id is None:
            return
        for key in self._client.get_run(self.run_id).data.metrics:
            self._logged.update((key, m.step) for m in self._client.get_metric_history(self.run_id, key)
                                if m.step >= self._resumed_iter)

    def _collect(self, scalars: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in scalars.items():
            if (key, int(step)) in self._logged:
                continue
            if not math.isfinite(value):
                if not self._warned_nonfinite:
                    self._warned_nonfinite = True
                    logging.getLogger("trainline").warning("not logging non-finite %s=%s to MLflow", key, value)
                continue
            self._buffer.append(Metric(key, float(value), now, int(step)))
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics (at most 1000 per request)."""
        while self._buffer:
            chunk, self._buffer = self._buffer[:1000], self._buffer[1000:]
            self._client.log_batch(self.run_id, metrics=chunk)

    def after_val_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        if self._client is not None:
            self.flush()
            if not self._headline_tagged:  # what `trainline compare` shows first
                self._client.set_tag(self.run_id, "trainline.headline", ",".join(runner.headline(metrics or {})))
                self._headline_tagged = True

    def after_test_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        """`<split>/<metric>` at step = the trained iterations, and the split and headline as tags."""
        if self._client is None:
            return
        from mlflow.entities import Metric, RunTag

        split = runner.cfg["eval"]["split"]
        step = runner.trained_iters
        now = int(time.time() * 1000)
        batch = [Metric(f"{split}/{k}", float(v), now, step) for k, v in (metrics or {}).items()
                 if isinstance(v, (int, float)) and math.isfinite(v)]
        headline = ",".join(runner.headline(metrics or {}))
        self._client.log_batch(self.run_id, metrics=batch, tags=[RunTag("eval.split", split),
                                                                 RunTag("trainline.headline", headline)])

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        if self._client is not None:
            self.flush()

    def after_train(self, runner: Any) -> None:
        if self._client is None:
            return
        self.flush()
        resolved = runner.work_dir / "resolved_config.yaml"
        resolved.write_text(dump_yaml(runner.cfg), encoding="utf-8")  # reloads to the same values
        (runner.work_dir / "hook_order.txt").write_text(runner.hook_order() + "\n", encoding="utf-8")
        for path in (resolved, runner.work_dir / "hook_order.txt", Path("params.yaml"), Path("dvc.yaml")):
            if path.is_file():
                self._client.log_artifact(self.run_id, str(path), artifact_path="config")
        self._log_checkpoints(runner)

    def _log_checkpoints(self, runner: Any) -> None:
        mode = runner.cfg["mlflow"]["log_checkpoints"]
        if mode == "none" or runner.last_checkpoint is None:
            return
        names = [runner.last_checkpoint.name] if mode == "last" else sorted(
            p.name for p in runner.work_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for name in names:
            self._client.log_artifacts(self.run_id, str(runner.work_dir / name), artifact_path=f"checkpoints/{name}")

    def after_run(self, runner: RunnerLike) -> None:
        if self._client is not None and runner.mode == "train":
            self.flush()
            self._client.set_terminated(self.run_id, status="FINISHED")

    def on_exception(self, runner: RunnerLike, exc: BaseException) -> None:
        """Mark the training's run failed after an error or interruption (what was buffered is still sent);
        checkpoints stay for the resume. A failed test leaves the finished training run as it is."""
        if self._client is not None and self.run_id is not None and runner.mode == "train":
            # A rerun of a finished training that fails before training anything new leaves that run FINISHED.
            progressed = runner.iter > self._resumed_iter
            status = self._previous_status if self._previous_status == "FINISHED" and not progressed else "FAILED"
            try:
                self.flush()
                self._client.set_terminated(self.run_id, status=status)
            except Exception:  # never mask the original error
                pass


def _has_checkpoints(work_dir: Path) -> bool:
    """Whether `work_dir` holds any checkpoint directory a resume could continue from (intact or not)."""
    return work_dir.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in work_dir.iterdir())
