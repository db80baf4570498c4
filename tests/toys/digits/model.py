"""A two-layer perceptron over the flattened glyph."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, batch, mode: str = "predict"):
        images, labels = batch
        logits = self.body(images)
        if mode == "loss":
            return {"loss": F.cross_entropy(logits, labels), "acc": (logits.argmax(1) == labels).float().mean()}
        return logits.argmax(1)
