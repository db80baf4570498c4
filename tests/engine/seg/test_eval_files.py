"""The eval stage's local files: per-class tables from the dotted metrics and the confusion-matrix plot; and the
runner's artifact seam the visualization hook publishes through."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from engine.pipeline.eval import write_eval_files
from engine.seg.metrics import IoUMetric


def test_eval_stage_writes_tables_and_confusion_matrix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    metric = IoUMetric(3, ["bg", "a", "b"], iou_metrics=["mIoU", "mFscore"])
    metric.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 255]))
    metrics = metric.compute()
    write_eval_files(metric, metrics, list(metric.headline))
    table = Path("metrics/per_class.md").read_text()
    assert table.splitlines()[0] == "| class | IoU | Acc | Fscore | Precision | Recall |"
    assert "| b | NaN | NaN | NaN | NaN | NaN |" in table  # absent from both: NaN, shown as such
    record = json.loads(Path("metrics/per_class.json").read_text())
    assert record["per_class"]["b"]["IoU"] is None and record["summary"]["mIoU"] == metrics["mIoU"]
    assert Path("plots/confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_an_evaluator_without_matrix_or_classes_gets_an_empty_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_eval_files(SimpleNamespace(), {"acc": 90.0}, ["acc"])
    assert json.loads(Path("metrics/per_class.json").read_text()) == {"summary": {"acc": 90.0}, "per_class": {}}
    assert not Path("plots/confusion_matrix.png").exists()


def test_runner_log_artifact_reaches_every_sink(tmp_path):
    from engine.runner import Runner

    received: list[tuple[Path, str]] = []
    fake = SimpleNamespace(_artifact_sinks=[])
    Runner.add_artifact_sink(fake, lambda path, where: received.append((path, where)))  # type: ignore[arg-type]
    Runner.log_artifact(fake, tmp_path / "a.png", "vis_data/val")  # type: ignore[arg-type]
    assert received == [(tmp_path / "a.png", "vis_data/val")]
