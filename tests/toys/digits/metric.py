"""Top-1 accuracy in percent."""

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
