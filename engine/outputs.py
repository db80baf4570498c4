"""Files the stages hand to DVC: metrics JSON and per-step plot CSVs, each written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from engine.checkpoint import atomic_write_text


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def write_plots(history: list[dict[str, Any]], path: Path, prefix: str, columns: tuple[str, ...]) -> None:
    """One CSV row per logged step that has `prefix` scalars: `step,<columns...>` (DVC plots data)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", *columns])
    for record in history:
        if any(f"{prefix}{c}" in record for c in columns):
            writer.writerow([record["step"], *(_fmt(record.get(f"{prefix}{c}")) for c in columns)])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())


def _fmt(value: Any) -> str:
    return "" if value is None else repr(float(value))
