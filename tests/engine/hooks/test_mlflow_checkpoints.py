"""`mlflow.log_checkpoints`: which checkpoint directories a run holds as artifacts (a real sqlite store)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.engine.fixtures import make_cfg, make_runner

pytestmark = pytest.mark.slow  # a real MLflow store


@pytest.mark.parametrize("mode", ["none", "last", "best", "all"])
def test_log_checkpoints_modes(tmp_path: Path, mode: str) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = make_cfg({"mlflow": {"tracking_uri": store, "log_checkpoints": mode},
                    "default_hooks": {"mlflow": {"type": "MLflowLoggerHook"},
                                      "checkpoint": {"interval": 2, "save_best": "auto"}},
                    "train_cfg": {"max_iters": 4, "val_interval": 2}})
    runner = make_runner(cfg, tmp_path / "run")
    runner.train()
    client = MlflowClient(store)
    logged = sorted(Path(a.path).name for a in client.list_artifacts(runner.mlflow_run_id, "checkpoints"))
    best = (runner.work_dir / "best_checkpoint").read_text().strip()
    regular = sorted(p.name for p in runner.work_dir.iterdir() if p.name.startswith("iter_"))
    expected = {"none": [], "last": ["iter_4"], "best": [best], "all": sorted([*regular, best])}[mode]
    assert logged == expected
    if mode == "best":
        files = {Path(a.path).name for a in client.list_artifacts(runner.mlflow_run_id, f"checkpoints/{best}")}
        assert "model.safetensors" in files
