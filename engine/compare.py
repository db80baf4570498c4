"""Runs side by side: the params that differ between MLflow runs and their final metrics, with deltas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from engine.errors import UserError

# Metrics shown by default, in this order, when the runs have them.
HEADLINE = ("test/mIoU", "test/mAcc", "test/aAcc", "val/mIoU", "train/loss")


def find_runs(client: Any, experiment_name: str, selectors: list[str], limit: int = 10) -> list[Any]:
    """Runs by id or run name (a DVC experiment name); none given = the experiment's newest `limit` runs."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise UserError(f"mlflow.experiment_name: no experiment {experiment_name!r} in the store; run `dvc repro` "
                        f"first or pass --params with the right mlflow section")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                              max_results=max(limit, 1000 if selectors else limit))
    if not selectors:
        return list(reversed(runs))  # oldest first: deltas read as "what changed since"
    found = []
    for selector in selectors:
        match = [r for r in runs if selector in (r.info.run_id, r.info.run_name)]
        if not match:
            raise UserError(f"{selector}: no run with this id or name in experiment {experiment_name!r}")
        found.append(match[0])
    return found


def comparison(runs: list[Any], metrics: tuple[str, ...] = HEADLINE) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one column per run; rows of differing params, then metrics with deltas against the first."""
    header = ["", *(r.info.run_name or r.info.run_id[:8] for r in runs)]
    rows: list[list[str]] = []
    keys = sorted({k for r in runs for k in r.data.params})
    for key in keys:
        values = [r.data.params.get(key, "") for r in runs]
        if len(set(values)) > 1:
            rows.append([f"params.{key}", *values])
    for key in metrics:
        values = [r.data.metrics.get(key) for r in runs]
        if all(v is None for v in values):
            continue
        first = values[0]
        cells = [_metric_cell(v, first, i) for i, v in enumerate(values)]
        rows.append([key, *cells])
    return header, rows


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
