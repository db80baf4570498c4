"""What one training's MLflow run holds (a real sqlite store): every train/val metric, system metrics on request,
the LR schedule plot, the evaluator's files and dvc.lock from the eval stage, and the final weights as a registered
model that loads back with the same outputs; a non-segmentation toy evaluator uses the same seam."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient

from engine.cli.sync_spools import sync_spools
from engine.hooks.hook import Hook, Priority
from engine.tracking_spool import SPOOL_NAME, Spool
from tests.engine.fixtures import make_cfg, make_runner, reset_accelerate

pytestmark = pytest.mark.slow  # a real MLflow store

TOYS = Path(__file__).resolve().parents[2] / "toys"
TRAIN_METRICS = {"train/loss", "train/loss_ce", "train/lr", "train/momentum", "train/grad_norm", "train/time",
                 "train/data_time", "train/throughput"}


def _files(client: MlflowClient, run_id: str, path: str = "") -> set[str]:
    """Every artifact file of the run under `path`, recursively."""
    out: set[str] = set()
    for item in client.list_artifacts(run_id, path or None):
        out |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return out


def _test(cfg: dict[str, Any], work_root: Path, run_id: str, iters: int) -> dict[str, float]:
    """What the eval stage does: score models/model.safetensors onto the training's run."""
    from engine.build import build_testing

    reset_accelerate()
    runner = build_testing(cfg, work_root)
    runner.mlflow_run_id, runner.trained_iters = run_id, iters
    return runner.test(Path("models/model.safetensors"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, dict[str, Any]]]:
    """A 4-iteration training with system metrics and a registered model, then its evaluation (with a dvc.lock);
    shared by the tests that read the run."""
    tmp_path = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        cfg = make_cfg({"mlflow": {"tracking_uri": store, "system_metrics": True, "register_model": "tiny-unet"},
                        "default_hooks": {"mlflow": {"type": "MLflowLoggerHook"}},
                        "custom_hooks": [{"type": "SegVisualizationHook", "draw": True, "interval": 1}],
                        "train_cfg": {"max_iters": 4, "val_interval": 2}})
        Path("params.yaml").write_text("seed: 0\n")  # what the stage copies into config/
        runner = make_runner(cfg, tmp_path / "work")
        runner.train()
        runner.save_weights(Path("models/model.safetensors"))
        Path("dvc.lock").write_text("schema: '2.0'\nstages:\n  train:\n    cmd: python -m stages.train\n")
        _test(cfg, tmp_path / "work", runner.mlflow_run_id, runner.iter)
        yield runner, store, cfg


def test_the_run_holds_every_metric_and_artifact(trained: tuple[Any, str, dict[str, Any]]) -> None:
    runner, store, cfg = trained
    client = MlflowClient(store)
    run = client.get_run(runner.mlflow_run_id)
    metrics = set(run.data.metrics)
    assert TRAIN_METRICS <= metrics
    assert {"val/mIoU", "val/aAcc", "test/mIoU", "test/IoU.circle"} <= metrics
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/throughput")] == [1, 2, 3, 4]
    assert all(m.value > 0 for m in client.get_metric_history(run.info.run_id, "train/throughput"))
    # MLflow's own sampler, attached to the run by id (the hook does not use a fluent run)
    assert any(k.startswith("system/cpu_utilization") for k in metrics), sorted(metrics)
    assert "system/system_memory_usage_megabytes" in metrics

    files = _files(client, run.info.run_id)
    assert {"config/params.yaml", "config/resolved_config.yaml", "config/hook_order.txt", "config/dvc.lock",
            "schedule/lr_schedule.png", "schedule/lr_schedule.csv", "checkpoints/iter_4/model.safetensors",
            "test/per_class.md", "test/per_class.json", "test/overlays/sample_0.png", "model/MLmodel"} <= files
    assert len([f for f in files if f.startswith("test/overlays/")]) == 4  # IoUMetric's num_overlays default
    assert "test/confusion_matrix.png" in files
    # SegVisualizationHook's pictures, published through runner.log_artifact: validations at iterations 2 and 4
    assert {"vis_data/val/sample_0_2.png", "vis_data/val/sample_0_4.png", "vis_data/test/sample_0_4.png"} <= files
    table = Path(client.download_artifacts(run.info.run_id, "test/per_class.md")).read_text()
    assert "| circle |" in table and f"| {run.data.metrics['test/IoU.circle']:.2f} |" in table
    lock = Path(client.download_artifacts(run.info.run_id, "config/dvc.lock")).read_text()
    assert "stages.train" in lock


def test_the_schedule_plot_is_the_one_trainline_schedule_draws(trained: tuple[Any, str, dict[str, Any]],
                                                              tmp_path: Path) -> None:
    from engine.cli.schedule_output import plot_schedule
    from engine.optim.simulate import simulate_schedule

    runner, store, cfg = trained
    plot_schedule(simulate_schedule(cfg), tmp_path / "cli.png")
    logged = MlflowClient(store).download_artifacts(runner.mlflow_run_id, "schedule/lr_schedule.png")
    assert Path(logged).read_bytes() == (tmp_path / "cli.png").read_bytes()


def test_the_registered_model_loads_back_with_the_same_outputs(trained: tuple[Any, str, dict[str, Any]]) -> None:
    runner, store, _ = trained
    client = MlflowClient(store)
    (version,) = client.search_model_versions("name = 'tiny-unet'")
    assert version.run_id == runner.mlflow_run_id and str(version.version) == "1"
    mlflow.set_tracking_uri(store)
    try:
        loaded = mlflow.pytorch.load_model("models:/tiny-unet/1")
        assert mlflow.pyfunc.load_model("models:/tiny-unet/1") is not None
    finally:
        mlflow.set_tracking_uri(None)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    batch = (images, torch.zeros(2, 32, 32, dtype=torch.long))
    model = runner.accelerator.unwrap_model(runner.model).eval()
    with torch.no_grad():
        assert torch.equal(loaded(batch, mode="predict"), model(batch, mode="predict"))


def test_a_second_finish_of_the_same_run_registers_no_second_version(tmp_path: Path) -> None:
    from engine.run_artifacts import register_model

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    assert register_model(client, "m", run_id) == "1"
    assert register_model(client, "m", run_id) == "1"
    assert register_model(client, "m", client.create_run(client.get_experiment_by_name("x").experiment_id)
                          .info.run_id) == "2"


class LockStoreAtEnd(Hook):
    """Before the MLflow hook's after_train: another writer holds the sqlite store until the test ends."""

    priority = Priority.HIGHEST

    def __init__(self, db: Path) -> None:
        self.db = db
        self.conn: sqlite3.Connection | None = None

    def after_train(self, runner: Any) -> None:
        self.conn = sqlite3.connect(self.db, timeout=1, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")


def test_a_store_down_at_the_end_leaves_the_model_in_the_spool_and_training_finishes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "mlflow.db"
    cfg = make_cfg({"mlflow": {"tracking_uri": f"sqlite:///{db}", "register_model": "tiny-unet"},
                    "default_hooks": {"mlflow": {"type": "MLflowLoggerHook", "sync_timeout": 1}}})
    runner = make_runner(cfg, tmp_path / "work")
    lock = LockStoreAtEnd(db)
    runner.register_hook(lock)
    with caplog.at_level(logging.WARNING, logger="trainline"):
        runner.train()  # no exception: the training is done, the tracking waits
    assert lock.conn is not None
    # The stopped sender gives up after its request in flight; only then does the store come back.
    deadline = time.monotonic() + 120
    while any(t.name == "trainline-mlflow-sender" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.2)
    lock.conn.execute("ROLLBACK")
    assert any("the registration of the model" in r.message and "trainline sync" in r.message
               for r in caplog.records)
    spool = Spool(runner.work_dir / SPOOL_NAME)
    pending = [r for _, r in spool.pending() if r.get("artifact_path") == "model"]
    assert [r["op"] for r in pending] == ["artifact", "register"]
    assert (Path(pending[0]["path"]) / "MLmodel").is_file()
    client = MlflowClient(f"sqlite:///{db}")
    assert not client.search_model_versions("name = 'tiny-unet'")

    # The store is back: `trainline sync` uploads the model and registers it; a second sync sends nothing.
    sent, failed = sync_spools(tmp_path / "work", client, f"sqlite:///{db}")
    assert sent and not failed
    (version,) = client.search_model_versions("name = 'tiny-unet'")
    assert version.run_id == runner.mlflow_run_id
    loaded = mlflow.pytorch.load_model(f"models:/tiny-unet/{version.version}")
    assert isinstance(loaded, torch.nn.Module)
    assert sync_spools(tmp_path / "work", client, f"sqlite:///{db}") == ([], [])


def test_a_toy_task_evaluator_logs_its_own_files_and_the_plain_toy_logs_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(TOYS))
    from digits.data import make_digits  # type: ignore[import-not-found]

    monkeypatch.chdir(tmp_path)
    make_digits(str(tmp_path / "digits"), seed=0, per_class=4)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    for name, evaluator in (("own", "digits.metric.AccuracyWithTable"), ("plain", "digits.metric.Accuracy")):
        cfg = make_cfg({"prepare": None, "data": {"root": str(tmp_path / "digits"), "batch_size": 8,
                                                  "classes": [str(i) for i in range(10)],
                                                  "dataset": {"_delete_": True, "type": "digits.data.Digits"}},
                        "model": {"_delete_": True, "type": "digits.model.Net", "hidden": 8},
                        "evaluator": {"_delete_": True, "type": evaluator},
                        "mlflow": {"tracking_uri": store, "experiment_name": name, "register_model": f"digits-{name}"},
                        "default_hooks": {"mlflow": {"type": "MLflowLoggerHook"}}})
        runner = make_runner(cfg, tmp_path / name)
        runner.train()
        runner.save_weights(Path("models/model.safetensors"))
        _test(cfg, tmp_path / name, runner.mlflow_run_id, runner.iter)
        files = _files(client, runner.mlflow_run_id)
        logged = {f for f in files if f.startswith("test/")}
        assert logged == ({"test/tables/per_label.csv"} if name == "own" else set()), files
        assert "model/MLmodel" in files and "schedule/lr_schedule.png" in files
        assert client.search_model_versions(f"name = 'digits-{name}'")[0].run_id == runner.mlflow_run_id
