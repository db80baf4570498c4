"""Plain-text tables for the terminal: the headline metrics and, where the evaluator reports them, per-class scores."""

from __future__ import annotations

from typing import Any

_NOT_METRICS = ("split", "per_class")


def metrics_table(record: dict[str, Any]) -> str:
    """A metrics/eval.json record: `| Class | <metric> ... |` rows (as MMSegmentation prints them), then the
    headline metrics on one line."""
    lines = []
    per_class: dict[str, dict[str, Any]] = record.get("per_class") or {}
    if per_class:
        columns = list(dict.fromkeys(k for scores in per_class.values() for k in scores))
        width = max([len("Class"), *(len(n) for n in per_class)])
        lines.append(f"| {'Class':<{width}} |" + "".join(f" {c:>6} |" for c in columns))
        lines.append(f"|{'-' * (width + 2)}|" + "".join("-" * (max(6, len(c)) + 2) + "|" for c in columns))
        for name, scores in per_class.items():
            lines.append(f"| {name:<{width}} |" + "".join(f" {_num(scores.get(c)):>{max(6, len(c))}} |"
                                                      for c in columns))
    headline = {k: v for k, v in record.items() if k not in _NOT_METRICS}
    lines.append("  ".join(f"{k}: {_num(v).strip()}" for k, v in headline.items()))
    return "\n".join(lines)


def _num(value: Any) -> str:
    try:
        return f"{float(value):6.2f}"
    except (TypeError, ValueError):
        return "   nan"
