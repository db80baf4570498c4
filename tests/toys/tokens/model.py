"""An embedding, one GRU layer and a linear head over the vocabulary."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .data import VOCAB


class TinyLM(nn.Module):
    def __init__(self, dim: int = 16, tie_weights: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCAB), dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, len(VOCAB))
        if tie_weights:
            # Language models' usual weight tying: one Parameter reached as embed.weight and as head.weight.
            self.head.weight = self.embed.weight

    def forward(self, batch, mode: str = "predict"):
        hidden, _ = self.rnn(self.embed(batch["ids"]))
        logits = self.head(hidden)
        if mode == "loss":
            return {"loss_next": F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())}
        return logits
