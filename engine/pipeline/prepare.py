"""Stage `prepare`: run the `prepare` callable, which writes the dataset into `data.root`."""

from __future__ import annotations

import logging
from typing import Any

from engine.pipeline.start import start_stage


def main(argv: list[str] | None = None) -> None:
    _, cfg = start_stage("prepare", __doc__, argv)
    from engine.build import run_prepare

    result = run_prepare(cfg)
    summary = _summary(result)
    logging.getLogger("trainline").info("prepared %s%s", cfg["data"]["root"], f" ({summary})" if summary else "")


def _summary(result: Any) -> str:
    """A line about what the callable returned, when it returned the usual `counts` / `classes` description."""
    if not isinstance(result, dict):
        return ""
    parts = []
    if isinstance(result.get("counts"), dict):
        parts.append(", ".join(f"{k}: {v}" for k, v in result["counts"].items()))
    if isinstance(result.get("classes"), list):
        parts.append("classes: " + ", ".join(map(str, result["classes"])))
    return "; ".join(parts)
