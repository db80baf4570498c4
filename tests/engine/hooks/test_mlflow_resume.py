"""The MLflow run of a resumed training, read back from a real sqlite store: each step exactly once, RUNNING again
and then FINISHED; a rerun that fails before training anything new leaves a finished run FINISHED."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from engine.hooks.hook import Hook, Priority
from tests.engine.fixtures import StopAt, StopTraining, make_cfg, make_runner

pytestmark = pytest.mark.slow  # a real MLflow store (migrations take a few seconds)


def _cfg(store: Path) -> dict:
    return make_cfg({"mlflow": {"tracking_uri": f"sqlite:///{store}", "experiment_name": "resume"},
                     "default_hooks": {"mlflow": {"type": "MLflowLoggerHook"},
                                       "checkpoint": {"interval": 2}},
                     "train_cfg": {"max_iters": 6, "val_interval": 3}})


def _series(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in sorted(keys)
            if not k.endswith(("time", "throughput"))}


class FailBeforeTraining(Hook):
    priority = Priority.LOWEST

    def before_train(self, runner) -> None:
        raise RuntimeError("failed early")


def test_resumed_run_has_each_step_once_and_finishes(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "mlflow.db")
    reference = make_runner(cfg, tmp_path / "reference")
    reference.train()

    first = make_runner(cfg, tmp_path / "run")
    first.register_hook(StopAt(iters=5))  # checkpoint at 4; steps 5 (and the val at 3) were logged before the kill
    with pytest.raises(StopTraining):
        first.train()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = first.mlflow_run_id
    assert client.get_run(run_id).info.status == "FAILED"
    assert max(s for s, _ in _series(client, run_id)["train/loss"]) == 5

    resumed = make_runner(cfg, tmp_path / "run")
    resumed.train()
    assert resumed.mlflow_run_id == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    series, expected = _series(client, run_id), _series(client, reference.mlflow_run_id)
    assert series == expected  # every step exactly once, with the uninterrupted run's values
    assert [s for s, _ in series["train/loss"]] == [1, 2, 3, 4, 5, 6]

    again = make_runner(cfg, tmp_path / "run")
    again.register_hook(FailBeforeTraining())
    with pytest.raises(RuntimeError, match="failed early"):
        again.train()
    assert client.get_run(run_id).info.status == "FINISHED"
