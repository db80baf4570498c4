"""Runs side by side: the params that differ between MLflow runs, their final and best metrics with deltas, and
their curves of one metric overlaid in a PNG."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.hooks.early_stopping_hook import infer_rule

# The tag the MLflow hook writes: the evaluator's headline metric names, comma-separated.
HEADLINE_TAG = "trainline.headline"
# Splits logged as curves (many steps): a best differs from the final value only there.
_CURVES = ("val", "train")


def headline_metrics(runs: list[Any]) -> tuple[str, ...]:
    """Metrics shown by default: each run's headline (from its tag) on the test split, then on validation, then
    the training loss; runs without the tag (older ones) show every test metric without a dot."""
    names: dict[str, None] = {}
    for run in runs:
        tagged = run.data.tags.get(HEADLINE_TAG)
        found = tagged.split(",") if tagged else sorted(
            k.split("/", 1)[1] for k in run.data.metrics if k.startswith("test/") and "." not in k)
        names.update(dict.fromkeys(n for n in found if n))
    splits = dict.fromkeys(k.split("/", 1)[0] for r in runs for k in r.data.metrics
                           if "/" in k and not k.startswith(("train/", "val/")))
    return (*(f"{split}/{n}" for split in splits for n in names), *(f"val/{n}" for n in names), "train/loss")


def comparison(runs: list[Any], metrics: tuple[str, ...] | None = None,
               history: Callable[[str, str], list[float]] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one column per run; rows of differing params, then metrics (default: the headline ones),
    each final value and, for a curve whose better direction the name tells (`mIoU`, `loss`...), its best, with
    deltas against the first run. `history(run_id, key)` gives a metric's values (the store's metric history)."""
    metrics = metrics if metrics is not None else headline_metrics(runs)
    header = ["", *(r.info.run_name or r.info.run_id[:8] for r in runs)]
    rows: list[list[str]] = []
    keys = sorted({k for r in runs for k in r.data.params})
    for key in keys:
        values = [r.data.params.get(key, "") for r in runs]
        if len(set(values)) > 1:
            rows.append([f"params.{key}", *values])
    for key in metrics:
        finals = [r.data.metrics.get(key) for r in runs]
        if all(v is None for v in finals):
            continue
        rows.append([key, *_cells(finals)])
        rule = infer_rule(key.rsplit("/", 1)[-1])
        if history is None or rule is None or key.split("/", 1)[0] not in _CURVES:
            continue
        pick = max if rule == "greater" else min
        bests = [pick(values) if (values := history(r.info.run_id, key)) else None for r in runs]
        rows.append([f"{key} (best)", *_cells(bests)])
    return header, rows


def _cells(values: list[float | None]) -> list[str]:
    return [_metric_cell(v, values[0], i) for i, v in enumerate(values)]


def _metric_cell(value: float | None, first: float | None, index: int) -> str:
    if value is None:
        return "-"
    if index == 0 or first is None:
        return f"{value:.4g}"
    return f"{value:.4g} ({value - first:+.4g})"


def render(header: list[str], rows: list[list[str]], fmt: str) -> str:
    """`table` (aligned text), `md`, `csv` or `json`."""
    if fmt == "json":
        return json.dumps([dict(zip(header, row, strict=True)) for row in rows], indent=2) + "\n"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows([header, *rows])
        return buffer.getvalue()
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in [header, *rows]) + "\n"


def plot_curves(runs: list[Any], metric: str, history: Callable[[str, str], list[tuple[int, float]]],
                path: Path) -> int:
    """Overlay `metric` against step for each run that logged it; returns how many runs were drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    drawn = 0
    for run in runs:
        points = history(run.info.run_id, metric)
        if not points:
            continue
        ax.plot([s for s, _ in points], [v for _, v in points], label=run.info.run_name or run.info.run_id[:8],
                marker="." if len(points) < 30 else None)
        drawn += 1
    if drawn:
        ax.set_xlabel("step (iteration)")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric}: {drawn} runs")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    plt.close(fig)
    return drawn
