"""Plain-text tables for the terminal: the metrics summary and per-class scores."""

from __future__ import annotations

from typing import Any


def metrics_table(summary: dict[str, float], per_class: dict[str, dict[str, float]]) -> str:
    """`| Class | IoU | Acc |` rows then the aAcc / mIoU / mAcc line, as MMSegmentation prints them."""
    width = max([len("Class"), *(len(n) for n in per_class)])
    lines = [f"| {'Class':<{width}} |   IoU  |   Acc  |", f"|{'-' * (width + 2)}|--------|--------|"]
    for name, scores in per_class.items():
        lines.append(f"| {name:<{width}} | {_pct(scores['IoU'])} | {_pct(scores['Acc'])} |")
    lines.append("  ".join(f"{k}: {summary[k]:.2f}" for k in ("aAcc", "mIoU", "mAcc")))
    return "\n".join(lines)


def _pct(value: Any) -> str:
    try:
        return f"{float(value):6.2f}"
    except (TypeError, ValueError):
        return "   nan"
