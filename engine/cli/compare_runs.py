"""Runs side by side: the params that differ between MLflow runs and their final metrics, with deltas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from engine.errors import UserError

# The tag the MLflow hook writes: the evaluator's headline metric names, comma-separated.
HEADLINE_TAG = "trainline.headline"


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


def comparison(runs: list[Any], metrics: tuple[str, ...] | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one column per run; rows of differing params, then metrics (default: the headline ones) with
    deltas against the first."""
    metrics = metrics if metrics is not None else headline_metrics(runs)
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
