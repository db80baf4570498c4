"""Base class of the bundled segmentation models: label maps in predict mode, a dict of losses in loss mode."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationModel(nn.Module):
    """A segmenter whose ``forward`` does both jobs, so a DDP wrapper sees the loss computed inside forward.

    Subclasses implement :meth:`predict_logits` (``(N, 3, H, W) -> (N, C, H, W)``, same spatial size as the input).
    A batch is ``(images, masks)``. ``forward(batch, mode="loss")`` returns ``{"loss_ce": ...}`` (plus any auxiliary
    terms a subclass adds; keys containing ``loss`` are summed into the training loss by the engine);
    ``forward(batch, mode="predict")`` returns the predicted label maps ``(N, H, W)``, what the evaluator scores
    (smaller to gather across processes than the logits).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor], mode: str = "predict") -> Any:
        images, masks = batch
        logits = self.predict_logits(images)
        if mode == "predict":
            return logits.argmax(dim=1)
        if mode != "loss":
            raise ValueError(f"mode must be 'loss' or 'predict', got {mode!r}")
        return self.loss(logits, masks)

    def loss(self, logits: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms for `logits` against the label maps `masks`."""
        return {"loss_ce": F.cross_entropy(logits.float(), masks.long(), ignore_index=self.ignore_index)}
