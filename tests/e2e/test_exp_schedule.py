"""The seed's optimization recipe end to end: the `train/lr` curve MLflow records equals `trainline schedule`."""

from __future__ import annotations

import csv
import io

import pytest
from mlflow.tracking import MlflowClient

from tests.e2e.conftest import BIN, make_project

pytestmark = pytest.mark.slow

# AdamW + custom_keys (no decay on pos_embed / cls_token / norm) + LinearLR warm-up then PolyLR, on the ViT.
SEED_RECIPE = {
    "model": {"type": "ViTSegmenter", "img_size": 32, "patch_size": 8, "embed_dims": 16, "num_layers": 2,
              "num_heads": 2, "mlp_ratio": 2},
    "optim": {"type": "AdamW", "lr": 0.00006, "betas": [0.9, 0.999], "weight_decay": 0.01},
    "optim_wrapper": {"type": "OptimWrapper", "paramwise_cfg": {"custom_keys": {
        "pos_embed": {"decay_mult": 0.0}, "cls_token": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0},
        "decode_head": {"lr_mult": 10.0}}}},
    "param_scheduler": [
        {"type": "LinearLR", "start_factor": 1.0e-6, "by_epoch": False, "begin": 0, "end": 4},
        {"type": "PolyLR", "power": 1.0, "eta_min": 0.0, "begin": 4, "end": 10, "by_epoch": False},
    ],
    "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": 10, "val_interval": 5},
    "default_hooks": {"checkpoint": {"type": "CheckpointHook", "interval": 5, "max_keep_ckpts": 1}},
}


def test_logged_lr_curve_matches_trainline_schedule(tmp_path):
    project = make_project(tmp_path, SEED_RECIPE)
    project.dvc("exp", "run", "-S", "optim.lr=6e-5")
    schedule = project.run(str(BIN / "trainline"), "schedule").stdout
    rows = list(csv.DictReader(io.StringIO(schedule)))
    assert len(rows) == 10
    group_columns = [c for c in rows[0] if c.startswith("lr/")]
    assert group_columns, "custom_keys produce several param groups, each with its own column"

    client = MlflowClient(project.store)
    exp = client.get_experiment_by_name(project.params()["mlflow"]["experiment_name"])
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["optim.lr"] == "6e-05"
    for column in ["lr", *group_columns]:
        logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, f"train/{column}")}
        expected = {int(r["iter"]): float(r[column]) for r in rows}
        assert logged == expected, column
    # The decode head's group runs at 10x the base lr; the warm-up peaks at the base lr at iteration 4.
    assert float(rows[3]["lr"]) == pytest.approx(6e-05, rel=1e-12)
    assert max(float(r[c]) for r in rows for c in group_columns) == pytest.approx(6e-04, rel=1e-12)
