"""A small U-Net segmenter: a conv encoder with max-pool downsampling and a skip-connected upsampling decoder."""

from __future__ import annotations

from typing import Any

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

    Any input size of at least ``2 ** (num_stages - 1)`` works: each decoder upsamples to its skip's exact size.
    With ``channels_last`` (default) weights and activations use the NHWC layout, which makes the small convs here
    roughly 1.4x faster on CPU; both weights and input must share the layout, so the input is converted too.
    Its feature maps (for ``auxiliary_head.in_index``) are the encoder levels' outputs, finest first.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 16,
        num_stages: int = 3,
        ignore_index: int = 255,
        channels_last: bool = True,
        auxiliary_head: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, test_cfg)
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
        self.add_auxiliary_head(auxiliary_head, widths)
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub omits it

    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        x = images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        for i, enc in enumerate(self.encoders):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = enc(x)
            skips.append(x)
        return skips

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        skips, x = feats, feats[-1]
        for dec, skip in zip(self.decoders, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], dim=1))
        logits = self.head(x)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits
