"""A small ConvNeXt segmenter whose backbone names (downsample_layers.S, stages.S.B) match MMSeg/MMPretrain ConvNeXt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.models.base import SegmentationModel


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map.

    It subclasses ``nn.LayerNorm`` on purpose: ``norm_decay_mult`` finds norm layers by class, as MMEngine does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> LayerNorm -> pointwise MLP (x4) -> layer scale ``gamma``, plus the residual."""

    def __init__(self, dim: int, layer_scale_init: float = 1e-6) -> None:
        super().__init__()
        # groups == in_channels makes this a depth-wise conv for dwconv_decay_mult.
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # channels-last so the norm and Linear layers act per pixel
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """Four-stage ConvNeXt encoder returning the feature map of every stage (strides 4, 8, 16, 32).

    ``layer_decay_style`` tells the layer-wise LR decay constructor which layer-id table applies (MMSeg's ConvNeXt one).
    """

    layer_decay_style = "convnext"

    def __init__(self, in_channels: int, depths: Sequence[int], dims: Sequence[int], stem_patch_size: int = 4,
                 layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"model.depths={list(depths)} and model.dims={list(dims)} must both have 4 entries")
        if stem_patch_size < 1:
            raise ValueError(f"model.stem_patch_size: must be >= 1, got {stem_patch_size}")
        stem = nn.Sequential(nn.Conv2d(in_channels, dims[0], kernel_size=stem_patch_size, stride=stem_patch_size),
                             LayerNorm2d(dims[0]))
        self.downsample_layers = nn.ModuleList([stem])
        for i in range(1, 4):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim, layer_scale_init_value) for _ in range(depth)))
            for dim, depth in zip(dims, depths, strict=True)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = images
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
            feats.append(x)
        return feats


class ConvNeXtDecodeHead(nn.Module):
    """FPN-lite head: 1x1 laterals, upsample to stride 4, sum, conv-BN-ReLU, 1x1 classifier, upsample to the input."""

    def __init__(self, in_dims: Sequence[int], num_classes: int, channels: int = 32) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(d, channels, kernel_size=1) for d in in_dims)
        self.fuse = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        target = feats[0].shape[-2:]
        x = self.lateral_convs[0](feats[0])
        for lateral, feat in zip(self.lateral_convs[1:], feats[1:], strict=True):
            x = x + F.interpolate(lateral(feat), size=target, mode="bilinear", align_corners=False)
        logits = self.conv_seg(self.act(self.bn(self.fuse(x))))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class ConvNeXtSegmenter(SegmentationModel):
    """ConvNeXt encoder + light decode head. Inputs should be at least 32 px per side (total stride 32, or
    ``8 * stem_patch_size``). ``stem_patch_size`` and ``layer_scale_init_value`` are MMPretrain's ConvNeXt arguments,
    ``channels`` the decode head's width.

    ``auxiliary_head.in_index`` picks one of the four stages' outputs (MMSeg's UPerNet configs use 2, the third)."""

    def __init__(
        self,
        num_classes: int,
        depths: Sequence[int] = (1, 1, 3, 1),
        dims: Sequence[int] = (16, 32, 64, 128),
        ignore_index: int = 255,
        in_channels: int = 3,
        stem_patch_size: int = 4,
        layer_scale_init_value: float = 1e-6,
        channels: int = 32,
        auxiliary_head: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
        init_cfg: dict[str, Any] | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, test_cfg)
        self.backbone = ConvNeXt(in_channels, depths, dims, stem_patch_size, layer_scale_init_value)
        self.decode_head = ConvNeXtDecodeHead(dims, num_classes, channels)
        self.add_auxiliary_head(auxiliary_head, list(dims))
        self.init_backbone(init_cfg, pretrained)

    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(images)

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.decode_head(feats, size)
