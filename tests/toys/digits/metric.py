"""Top-1 accuracy in percent (and a variant that also writes a per-label table for the run)."""

from __future__ import annotations


class Accuracy:
    headline = ("accuracy",)

    def reset(self) -> None:
        self.correct = self.total = 0

    def process(self, batch, outputs) -> None:
        labels = batch[1]
        self.correct += int((outputs == labels).sum())
        self.total += int(labels.numel())

    def compute(self) -> dict[str, float]:
        return {"accuracy": 100.0 * self.correct / max(self.total, 1)}


class AccuracyWithTable(Accuracy):
    """Accuracy, plus files of its own for the run (the optional `artifacts` seam): a per-label CSV."""

    def reset(self) -> None:
        super().reset()
        self.counts: dict[int, list[int]] = {}

    def process(self, batch, outputs) -> None:
        super().process(batch, outputs)
        for label, pred in zip(batch[1].tolist(), outputs.tolist(), strict=True):
            hit = self.counts.setdefault(label, [0, 0])
            hit[0] += int(label == pred)
            hit[1] += 1

    def artifacts(self, out_dir):
        path = out_dir / "tables" / "per_label.csv"
        path.parent.mkdir()
        rows = "".join(f"{k},{c},{n}\n" for k, (c, n) in sorted(self.counts.items()))
        path.write_text("label,correct,total\n" + rows)
        return [path, out_dir / "missing.txt"]  # the second does not exist: warned about, not logged
