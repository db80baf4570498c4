"""A small U-Net segmenter: a conv encoder with max-pool downsampling and a skip-connected upsampling decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.models.base import SegmentationModel


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two 3x3 conv-BN-ReLU layers; bias is dropped because BatchNorm's shift replaces it."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UNet(SegmentationModel):
    """U-Net with ``num_stages`` resolution levels; level ``i`` has ``base_channels * 2**i`` channels.

    Input height and width must be divisible by ``2 ** (num_stages - 1)`` so the skip connections line up.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 16,
        num_stages: int = 3,
        ignore_index: int = 255,
    ) -> None:
        super().__init__(num_classes, ignore_index)
        if num_stages < 1:
            raise ValueError(f"num_stages must be >= 1, got {num_stages}")
        widths = [base_channels * 2**i for i in range(num_stages)]
        self.encoders = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.encoders.append(_conv_block(prev, w))
            prev = w
        self.decoders = nn.ModuleList()
        for w in reversed(widths[:-1]):
            # Upsampled deeper features (prev channels) are concatenated with the skip (w channels).
            self.decoders.append(_conv_block(prev + w, w))
            prev = w
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.divisor = 2 ** (num_stages - 1)

    def predict_logits(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h % self.divisor or w % self.divisor:
            raise ValueError(f"UNet input size {h}x{w} must be divisible by {self.divisor}")
        skips = []
        x = images
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        for dec, skip in zip(self.decoders, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        return self.head(x)
