"""Next-token accuracy (percent) and perplexity."""

from __future__ import annotations

import math

import torch.nn.functional as F


class NextToken:
    def reset(self) -> None:
        self.correct = self.total = 0
        self.nll = 0.0

    def process(self, batch, outputs) -> None:
        targets = batch["targets"]
        self.correct += int((outputs.argmax(-1) == targets).sum())
        self.total += int(targets.numel())
        self.nll += float(F.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="sum"))

    def compute(self) -> dict[str, float]:
        return {"token_acc": 100.0 * self.correct / max(self.total, 1),
                "perplexity": math.exp(self.nll / max(self.total, 1))}
