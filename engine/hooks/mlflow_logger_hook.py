"""MLflowLoggerHook: one MLflow run per training, with params, tags, metrics, config and checkpoints; the eval
stage's test metrics land on that same run. Everything goes through an on-disk spool and a background sender, so the
tracking side never stalls or stops the training and nothing is lost while it is down.

What a run holds: params, tags and the scalars the other hooks publish (`train/*`, `val/*`, the eval stage's
`<split>/*`), optionally MLflow's system metrics; artifacts `config/` (params.yaml, resolved config, dvc.yaml, hook
order; dvc.lock from the eval stage), `schedule/` (the LR schedule plot and CSV), `<split>/` (the evaluator's own
files from the eval stage), what other hooks publish with `runner.log_artifact` (e.g. `vis_data/`), `checkpoints/`,
and `model/` (the final weights as an MLflow model, registered under `mlflow.register_model`)."""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from engine import run_artifacts, tracking
from engine.config import dump_yaml
from engine.hooks.hook import Hook, Priority
from engine.protocols import RunnerLike
from engine.tracking_sender import Sender
from engine.tracking_spool import SPOOL_NAME, Spool

_RUN_ID_FILE = "mlflow_run_id"
_MAX_METRICS, _MAX_PARAMS = 1000, 100  # per log_batch request
logger = logging.getLogger("trainline")


class MLflowLoggerHook(Hook):
    """Only the main process talks to MLflow. Metrics are buffered and spooled every `flush_every` points, at
    validation, at checkpoints and at the end; the sender thread delivers the spool. A resumed training continues
    the run recorded in its work dir instead of opening a new one. At the end the hook waits up to `sync_timeout`
    seconds for the store to take everything; what is left stays in the spool for `trainline sync`."""

    priority = Priority.BELOW_NORMAL

    def __init__(self, flush_every: int = 500, sync_timeout: float = 30.0) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be a positive number of points, got {flush_every}")
        if sync_timeout < 0:
            raise ValueError(f"sync_timeout must be >= 0 seconds, got {sync_timeout}")
        self.flush_every = flush_every
        self.sync_timeout = float(sync_timeout)
        self.run_id: str | None = None
        self._client: Any = None
        self._spool: Spool | None = None
        self._sender: Sender | None = None
        self._uri = ""
        self._buffer: list[list[Any]] = []
        self._unspooled: list[dict[str, Any]] = []  # records the disk refused; retried at the next flush
        self._warned: set[str] = set()
        self._headline_tagged = False
        self._system: run_artifacts.SystemMetrics | None = None
        # Continuing a run: its status before this process touched it, and the (key, step) points it already holds
        # (a resumed training recomputes the steps between its checkpoint and the kill; each is logged once).
        self._previous_status: str | None = None
        self._resumed_iter = 0
        self._logged: set[tuple[str, int]] = set()

    # -- start ---------------------------------------------------------------------------------------------------
    def before_run(self, runner: RunnerLike) -> None:
        if not runner.is_main_process:
            return
        cfg = runner.cfg
        if runner.mode == "test" and runner.mlflow_run_id is None:
            return  # testing adds to the training's run (the eval stage sets its id); without one, nothing to add to
        # The sender retries with its own back-off; MLflow's HTTP retries (7, exponential) would hold a request for
        # minutes. A user's own setting wins.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        self._uri = tracking.tracking_uri(cfg)
        tracking.check_reachable(self._uri)
        self._client = tracking.client(self._uri)
        runner.work_dir.mkdir(parents=True, exist_ok=True)
        self._spool = Spool(runner.work_dir / SPOOL_NAME)
        self._sender = Sender(self._spool, self._client, self._uri).start()
        runner.add_artifact_sink(self._artifact)
        if runner.mode == "test":
            self.run_id = runner.mlflow_run_id
            return
        id_file = runner.work_dir / _RUN_ID_FILE
        if cfg["resume"] is not False and _has_checkpoints(runner.work_dir) and id_file.is_file():
            self.run_id = id_file.read_text(encoding="utf-8").strip()
            self._previous_status = self._client.get_run(self.run_id).info.status
            self._spool_records([{"op": "status", "status": "RUNNING"}])
        else:
            exp_id = tracking.experiment_id(self._client, cfg["mlflow"]["experiment_name"], self._uri)
            tags = tracking.run_tags(tracking.project_root(), runner.run_tags())
            name = cfg["mlflow"]["run_name"] or os.environ.get("DVC_EXP_NAME") or None
            run = tracking.with_retries(lambda: self._client.create_run(exp_id, run_name=name, tags=tags),
                                        "creating the MLflow run")
            self.run_id = run.info.run_id
            id_file.write_text(self.run_id, encoding="utf-8")
        params = sorted(tracking.flat_params(cfg).items())
        self._spool_records([{"op": "batch", "params": [list(p) for p in params[i:i + _MAX_PARAMS]]}
                             for i in range(0, len(params), _MAX_PARAMS)])
        runner.add_scalar_sink(self._collect)
        runner.mlflow_run_id = self.run_id

    def before_train(self, runner: RunnerLike) -> None:
        """Start MLflow's system-metrics sampler (`mlflow.system_metrics`) and log the LR schedule plot."""
        if self._client is None or self.run_id is None:
            return
        if runner.cfg["mlflow"]["system_metrics"] and self._system is None:
            try:
                self._system = run_artifacts.SystemMetrics(self.run_id, self._uri,
                                                           resume=self._previous_status is not None)
            except Exception as exc:  # noqa: BLE001 - a sampler that cannot start costs the training nothing
                logger.warning("MLflow system metrics not recorded: %s", exc)
        try:
            files = run_artifacts.write_schedule(runner, runner.work_dir / ".tracked_schedule")
        except Exception as exc:  # noqa: BLE001 - a plot that cannot be drawn is not a reason to stop training
            logger.warning("LR schedule plot not logged to MLflow: %s: %s", type(exc).__name__, exc)
            return
        self._spool_records([_artifact_record(p, "schedule") for p in files])

    def after_load_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        """Note what the continued run already holds past the checkpoint (in the store or still in the spool), so
        those points are not logged again."""
        self._resumed_iter = int(checkpoint["meta"]["iter"])
        if self._client is None or self.run_id is None or self._spool is None:
            return
        for record in self._spool.records():
            if record.get("run") == self.run_id:
                self._logged.update((k, step) for k, _, _, step in record.get("metrics", [])
                                    if step >= self._resumed_iter)
        try:
            for key in self._client.get_run(self.run_id).data.metrics:
                self._logged.update((key, m.step) for m in self._client.get_metric_history(self.run_id, key)
                                    if m.step >= self._resumed_iter)
        except Exception as exc:  # noqa: BLE001 - the store is down: the spool is what this run has sent
            logger.warning("MLflow store %s did not answer (%s); points already logged past iteration %d are "
                           "taken from the spool only", self._uri, type(exc).__name__, self._resumed_iter)

    # -- spooling ------------------------------------------------------------------------------------------------
    def _spool_records(self, records: list[dict[str, Any]]) -> None:
        """Make `records` durable and wake the sender. A disk that refuses keeps them in memory for the next try."""
        if self._spool is None or self._sender is None:
            return
        pending = self._unspooled + [{"run": self.run_id, **r} for r in records]
        try:
            self._spool.append(pending)
        except OSError as exc:
            self._unspooled = pending
            self._warn_once("spool", f"cannot write the tracking spool {self._spool.path} ({exc}); keeping "
                                     f"{len(pending)} records in memory and retrying; training continues")
            return
        self._unspooled = []
        self._sender.wake()

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("%s", message)

    def _collect(self, scalars: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        for key, value in scalars.items():
            if (key, int(step)) in self._logged:
                continue
            if not math.isfinite(value):
                self._warn_once("nonfinite", f"not logging non-finite {key}={value} to MLflow")
                continue
            self._buffer.append([key, float(value), now, int(step)])
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def _artifact(self, path: Path, artifact_path: str) -> None:
        """A file another hook published (`runner.log_artifact`), spooled like the hook's own artifacts."""
        self._spool_records([_artifact_record(path, artifact_path)])

    def flush(self) -> None:
        """Spool the buffered metrics (at most 1000 per record, as one request takes)."""
        records = [{"op": "batch", "metrics": self._buffer[i:i + _MAX_METRICS]}
                   for i in range(0, len(self._buffer), _MAX_METRICS)]
        self._buffer = []
        self._spool_records(records)

    # -- events --------------------------------------------------------------------------------------------------
    def after_val_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        if self._client is None:
            return
        self.flush()
        if not self._headline_tagged:  # what `trainline compare` shows first
            headline = ",".join(runner.headline(metrics or {}))
            self._spool_records([{"op": "batch", "tags": [["trainline.headline", headline]]}])
            self._headline_tagged = True

    def after_test_epoch(self, runner: RunnerLike, metrics: dict[str, float] | None = None) -> None:
        """`<split>/<metric>` at step = the trained iterations, and the split and headline as tags."""
        if self._client is None:
            return
        split = runner.cfg["eval"]["split"]
        step = runner.trained_iters
        now = int(time.time() * 1000)
        points = [[f"{split}/{k}", float(v), now, step] for k, v in (metrics or {}).items()
                  if isinstance(v, (int, float)) and math.isfinite(v)]
        tags = [["eval.split", split], ["trainline.headline", ",".join(runner.headline(metrics or {}))]]
        self._spool_records([{"op": "batch", "metrics": points, "tags": tags}] + self._eval_records(runner, split))

    def _eval_records(self, runner: RunnerLike, split: str) -> list[dict[str, Any]]:
        """`config/dvc.lock` as DVC left it when this evaluation started (the pipeline's entries up to the trained
        model: data, params and weights hashes; DVC writes the eval entry only after this stage ends), and the
        evaluator's own files under `<split>/`."""
        out = runner.work_dir / ".tracked_eval" / split  # dot: not a checkpoint to resume
        records = []
        if Path("dvc.lock").is_file():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile("dvc.lock", out / "dvc.lock")
            records.append(_artifact_record(out / "dvc.lock", "config"))
        try:
            files = run_artifacts.evaluator_files(runner.evaluator, out / "evaluator")
        except Exception as exc:  # noqa: BLE001 - the metrics are computed and logged; the extras are extras
            logger.warning("evaluator.artifacts() failed, its files are not logged to MLflow: %s: %s",
                           type(exc).__name__, exc)
            files = []
        base = (out / "evaluator").resolve()
        for path in files:  # the layout below out_dir is kept (log_artifacts puts a directory's *contents* there)
            parent = (path if path.is_dir() else path.parent).relative_to(base)
            records.append(_artifact_record(path, "/".join([split, *parent.parts])))
        return records

    def before_save_checkpoint(self, runner: Any, checkpoint: dict[str, Any]) -> None:
        # Every point before a checkpoint is durable before the checkpoint is: a resume recomputes only later ones.
        if self._client is not None:
            self.flush()

    def after_train(self, runner: Any) -> None:
        if self._client is None:
            return
        self.flush()
        # The config files go into the work dir first: a delayed upload sends what this training used, not what the
        # files hold by the time the store answers.
        config_dir = runner.work_dir / ".tracked_config"  # dot: not a checkpoint to resume
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "resolved_config.yaml").write_text(dump_yaml(runner.cfg), encoding="utf-8")
        (config_dir / "hook_order.txt").write_text(runner.hook_order() + "\n", encoding="utf-8")
        for name in ("params.yaml", "dvc.yaml"):
            if Path(name).is_file():
                shutil.copyfile(name, config_dir / name)
        records = [_artifact_record(p, "config") for p in sorted(config_dir.iterdir())]
        self._spool_records(records + self._checkpoint_records(runner) + self._model_records(runner))

    def _model_records(self, runner: Any) -> list[dict[str, Any]]:
        """`mlflow.register_model: NAME`: the final weights as an MLflow model in `model/` (written locally, then
        spooled like any artifact), then a `register` record: the sender (or `trainline sync` after an outage)
        registers it once the store has taken the model, whenever that is."""
        name = runner.cfg["mlflow"]["register_model"]
        if not name:
            return []
        try:
            path = run_artifacts.save_model(runner, runner.work_dir / ".tracked_model")
        except Exception as exc:  # noqa: BLE001 - the weights are in models/ and the checkpoints either way
            logger.warning("final weights not logged as an MLflow model (so not registered as %s): %s: %s", name,
                           type(exc).__name__, exc)
            return []
        return [_artifact_record(path, "model"),
                {"op": "register", "name": name, "artifact_path": "model"}]

    def _checkpoint_records(self, runner: Any) -> list[dict[str, Any]]:
        """`mlflow.log_checkpoints`: `last` (what a resume continues from), `best` (each `best_checkpoint*`
        pointer's target), `all` (every checkpoint in the work dir, best ones included), `none`."""
        from engine.checkpoint import BEST_POINTER

        mode = runner.cfg["mlflow"]["log_checkpoints"]
        work_dir = runner.work_dir
        if mode == "none" or not work_dir.is_dir():
            return []
        if mode == "last":
            names = [runner.last_checkpoint.name] if runner.last_checkpoint is not None else []
        elif mode == "best":
            names = sorted({p.read_text(encoding="utf-8").strip() for p in work_dir.glob(f"{BEST_POINTER}*")
                            if p.is_file()})
        else:
            names = sorted(p.name for p in work_dir.iterdir() if _is_checkpoint(p))
        return [_artifact_record(work_dir / n, f"checkpoints/{n}") for n in names if _is_checkpoint(work_dir / n)]

    def after_run(self, runner: RunnerLike) -> None:
        if self._client is None:
            return
        self.flush()
        if runner.mode == "train":
            self._spool_records([{"op": "status", "status": "FINISHED", "end_time": int(time.time() * 1000)}])
        self._finish(self.sync_timeout)

    def on_exception(self, runner: RunnerLike, exc: BaseException) -> None:
        """End the training's run as KILLED (a requested stop) or FAILED, after spooling what was buffered;
        checkpoints stay for the resume. A failed test leaves the finished training run as it is."""
        if self._client is None or self.run_id is None:
            return
        from engine.signals import TrainingInterrupted

        self.flush()
        if runner.mode == "train":
            # A rerun of a finished training that fails before training anything new leaves that run FINISHED.
            progressed = runner.iter > self._resumed_iter
            if isinstance(exc, TrainingInterrupted):
                status = "KILLED"
            elif self._previous_status == "FINISHED" and not progressed:
                status = "FINISHED"
            else:
                status = "FAILED"
            self._spool_records([{"op": "status", "status": status, "end_time": int(time.time() * 1000)}])
        self._finish(min(self.sync_timeout, 10.0))

    def _finish(self, timeout: float) -> None:
        """Wait (bounded) for the store to take the spool; say where the rest is if it does not."""
        assert self._spool is not None and self._sender is not None
        if self._system is not None:
            self._system.stop(min(timeout, 5.0))
            self._system = None
        delivered = self._sender.drain(timeout) and not self._unspooled
        self._sender.stop()
        if delivered:
            self._spool.remove_if_delivered()
            return
        left = self._spool.pending_count() + len(self._unspooled)
        logger.warning("MLflow store %s has not taken %d tracking records yet (the registration of the model "
                       "among them, if mlflow.register_model is set); they are kept in %s: run `trainline sync` "
                       "when it is back", self._uri, left, self._spool.path)


def _artifact_record(path: Path, artifact_path: str) -> dict[str, Any]:
    """A spool record uploading `path` (a file, or a directory's contents) under `artifact_path`."""
    return {"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path}


def _is_checkpoint(path: Path) -> bool:
    return path.is_dir() and (path / "meta.json").is_file() and not path.name.startswith(".")


def _has_checkpoints(work_dir: Path) -> bool:
    """Whether `work_dir` holds any checkpoint directory a resume could continue from (intact or not)."""
    return work_dir.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in work_dir.iterdir())
