"""SegVisualizationHook: MMSeg's interval rule, the files and their MLflow publication, show without a display."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine.config.resolve import resolve_type
from engine.hooks.hook import handled_events
from engine.seg.metrics import IoUMetric
from engine.seg.visualization_hook import SegVisualizationHook
from engine.seg.visualize import draw_sample, palette

NAMES = ["background", "circle", "square", "triangle"]


def _runner(tmp_path: Path, *, main: bool = True) -> SimpleNamespace:
    published: list[tuple[Path, str]] = []
    return SimpleNamespace(work_dir=tmp_path, is_main_process=main, iter=40, trained_iters=100, cfg={"data": {}},
                           evaluator=IoUMetric(4, NAMES), published=published,
                           log_artifact=lambda path, artifact_path: published.append((path, artifact_path)))


def _batch(n: int = 2) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    masks = torch.zeros(n, 8, 8, dtype=torch.long)
    masks[:, 2:6, 2:6] = 1
    masks[:, 0, :] = 255
    preds = masks.clamp(max=3).clone()
    preds[:, 6:, 6:] = 2
    return (torch.randn(n, 3, 8, 8), masks), preds


def test_registered_by_short_name_with_mmseg_defaults():
    cls = resolve_type("SegVisualizationHook", "hook")
    hook = cls()
    assert cls is SegVisualizationHook
    assert (hook.draw, hook.interval, hook.show, hook.wait_time, hook.alpha) == (False, 50, False, 0.0, 0.8)
    assert {"after_val_iter", "after_test_iter"} <= set(handled_events(hook))
    with pytest.raises(ValueError, match="alpha must be between 0 and 1"):
        SegVisualizationHook(alpha=1.5)
    with pytest.raises(ValueError, match="interval must be a positive"):
        SegVisualizationHook(interval=0)


def test_draws_every_interval_th_batch_and_publishes(tmp_path):
    runner = _runner(tmp_path)
    hook = SegVisualizationHook(draw=True, interval=2)
    hook.before_val_epoch(runner)
    for idx in range(4):
        batch, preds = _batch()
        hook.after_val_iter(runner, batch_idx=idx, data_batch=batch, outputs=preds)
    # MMEngine's every_n_inner_iters: batch indices 1 and 3; every sample of those batches, at step = runner.iter.
    files = sorted(p.name for p in (tmp_path / "vis_data" / "val").iterdir())
    assert files == ["sample_2_40.png", "sample_3_40.png", "sample_6_40.png", "sample_7_40.png"]
    assert [a for _, a in runner.published] == ["vis_data/val"] * 4
    assert all(p.is_file() for p, _ in runner.published)

    hook.before_test_epoch(runner)
    batch, preds = _batch(1)
    hook.after_test_iter(runner, batch_idx=1, data_batch=batch, outputs=preds)
    assert (tmp_path / "vis_data" / "test" / "sample_0_100.png").is_file()  # test: step = trained iterations


def test_draw_false_and_other_processes_draw_nothing(tmp_path):
    batch, preds = _batch()
    off = _runner(tmp_path / "off")
    SegVisualizationHook(interval=1).after_val_iter(off, batch_idx=0, data_batch=batch, outputs=preds)
    other = _runner(tmp_path / "rank1", main=False)
    SegVisualizationHook(draw=True, interval=1).after_val_iter(other, batch_idx=0, data_batch=batch, outputs=preds)
    assert not off.published and not other.published
    assert not (tmp_path / "off").exists() and not (tmp_path / "rank1").exists()


def test_show_without_display_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    runner = _runner(tmp_path)
    hook = SegVisualizationHook(draw=True, interval=1, show=True)
    with caplog.at_level(logging.WARNING, logger="trainline"):
        for idx in range(2):
            batch, preds = _batch()
            hook.after_val_iter(runner, batch_idx=idx, data_batch=batch, outputs=preds)
    assert [r.getMessage() for r in caplog.records].count(
        "SegVisualizationHook: show is true but there is no display (DISPLAY is not set); pictures are only "
        "written to vis_data/") == 1
    assert len(runner.published) == 4  # still written and published


def test_picture_panels_use_the_palette_and_alpha():
    batch, preds = _batch(1)
    picture = draw_sample(batch[0][0], batch[1][0], preds[0], 4, 255, alpha=1.0, class_names=NAMES)
    colours = {tuple(int(v) for v in c) for c in picture.reshape(-1, 3)}
    # alpha 1: the overlay is the pure palette, so circle, square and background colours are all present
    assert {tuple(int(v) for v in palette(4)[c]) for c in (0, 1, 2)} <= colours
    assert picture.dtype == np.uint8 and picture.shape[2] == 3
    many = palette(150)
    assert len({tuple(c) for c in many.tolist()}) == 150  # ADE20K-sized palettes stay distinct
