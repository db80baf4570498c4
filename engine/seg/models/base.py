"""Base class of the bundled segmentation models: logits in predict mode, a dict of losses in loss mode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """A segmenter whose ``forward`` does both jobs, so a DDP wrapper sees the loss computed inside forward.

    Subclasses implement :meth:`predict_logits` (``(N, 3, H, W) -> (N, C, H, W)``, same spatial size as the input).
    ``forward(images)`` returns logits; ``forward(images, masks)`` returns ``{"loss_ce": ...}`` (plus any auxiliary
    terms a subclass adds); keys containing ``loss`` are summed into the training loss by the engine.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, images: torch.Tensor, masks: torch.Tensor | None = None):
        logits = self.predict_logits(images)
        if masks is None:
            return logits
        return {"loss_ce": F.cross_entropy(logits.float(), masks.long(), ignore_index=self.ignore_index)}
