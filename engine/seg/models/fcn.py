"""A small FCN segmenter: a strided and dilated conv encoder, a 1x1 classifier and bilinear upsampling."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.models.base import SegmentationModel


def _conv_bn_relu(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class FCN(SegmentationModel):
    """FCN with output stride 4: two stride-2 stages, then dilated convs that widen the receptive field
    without losing more resolution; logits are upsampled bilinearly to the input size.

    Its feature maps (for ``auxiliary_head.in_index``) are the stem's and the dilated context's, both stride 4."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        base_channels: int = 32,
        dilations: tuple[int, ...] = (1, 2, 4, 1),
        dropout: float = 0.1,
        ignore_index: int = 255,
        auxiliary_head: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, test_cfg)
        c = base_channels
        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, c),
            _conv_bn_relu(c, c, stride=2),
            _conv_bn_relu(c, 2 * c, stride=2),
        )
        self.context = nn.Sequential(*[_conv_bn_relu(2 * c, 2 * c, dilation=d) for d in dilations])
        self.dropout = nn.Dropout2d(dropout)
        self.head = nn.Conv2d(2 * c, num_classes, 1)
        self.add_auxiliary_head(auxiliary_head, [2 * c, 2 * c])

    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        stem = self.stem(images)
        return [stem, self.context(stem)]

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        logits = self.head(self.dropout(feats[-1]))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
