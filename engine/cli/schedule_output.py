"""Render a simulated schedule: CSV for tools, a PNG a person can read."""

from __future__ import annotations

import csv
import io
from pathlib import Path


def schedule_csv(rows: list[dict[str, float]]) -> str:
    """Columns `iter,lr[,momentum]` (lr: the base lr) then `lr/<group>` per param group when a group differs from it."""
    head = ["iter", "lr"] + (["momentum"] if rows and "momentum" in rows[0] else [])
    extra = [k for k in (rows[0] if rows else {}) if k.startswith("lr/")]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(head + extra)
    for row in rows:
        writer.writerow([row["iter"], *(repr(float(row[k])) for k in head[1:] + extra)])
    return buffer.getvalue()


def plot_schedule(rows: list[dict[str, float]], path: Path) -> None:
    """Learning rate (and momentum on a second axis) against iteration, with axes, labels and a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iters = [r["iter"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.plot(iters, [r["lr"] for r in rows], label="lr (base)", color="tab:blue")
    for key in [k for k in rows[0] if k.startswith("lr/")][:8]:
        ax.plot(iters, [r[key] for r in rows], label=key, linewidth=0.8, alpha=0.7)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.grid(alpha=0.3)
    if "momentum" in rows[0]:
        ax2 = ax.twinx()
        ax2.plot(iters, [r["momentum"] for r in rows], label="momentum", color="tab:red", linestyle="--")
        ax2.set_ylabel("momentum")
        ax2.legend(loc="upper right")
    ax.legend(loc="upper left" if "momentum" in rows[0] else "best")
    ax.set_title("Parameter schedule")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
