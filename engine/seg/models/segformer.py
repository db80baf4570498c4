"""SegFormer: MMSeg's MixVisionTransformer (MiT) encoder and all-MLP SegformerHead, with MMSeg's parameter names.

Names, as MMSeg's, so its SegFormer ``paramwise_cfg`` (``custom_keys: {pos_block, norm, head}``) applies unchanged:
``backbone.layers.{i}.0`` is stage i's overlapping patch embedding (``projection``, ``norm``), ``backbone.layers.{i}.1.
{j}`` its transformer blocks (``norm1``, ``attn.attn.{in_proj_weight,out_proj}``, ``attn.sr``, ``attn.norm``,
``norm2``, ``ffn.layers.{0,1,4}``: fc1, the depth-wise 3x3 conv, fc2), ``backbone.layers.{i}.2`` its final LayerNorm
(matched by position, so a ``norm`` custom key does not reach it, as in MMSeg); ``decode_head.convs.{i}``,
``decode_head.fusion_conv``, ``decode_head.conv_seg``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.models.base import SegmentationModel
from engine.seg.models.heads import ConvModule


def _to_map(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], hw[0], hw[1])


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a sample's residual branch with probability ``p`` (rescaling the rest)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: a strided conv (kernel > stride) and a LayerNorm over the tokens."""

    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        hw = (x.shape[-2], x.shape[-1])
        return self.norm(_to_tokens(x)), hw


class EfficientMultiheadAttention(nn.Module):
    """Self-attention whose keys and values come from a map shrunk ``sr_ratio`` times per side (conv ``sr`` +
    LayerNorm ``norm``), so the cost at high resolution is ``1 / sr_ratio**2`` of plain attention."""

    def __init__(self, embed_dims: int, num_heads: int, sr_ratio: int, qkv_bias: bool, attn_drop: float,
                 drop: float, drop_path: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=attn_drop, bias=qkv_bias, batch_first=True)
        self.proj_drop = nn.Dropout(drop)
        self.drop_path = DropPath(drop_path)
        self.sr_ratio = sr_ratio
        if sr_ratio > 1:
            self.sr = nn.Conv2d(embed_dims, embed_dims, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(embed_dims)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], identity: torch.Tensor) -> torch.Tensor:
        kv = x
        if self.sr_ratio > 1:
            kv = self.norm(_to_tokens(self.sr(_to_map(x, hw))))
        out = self.attn(x, kv, kv, need_weights=False)[0]
        return identity + self.drop_path(self.proj_drop(out))


class MixFFN(nn.Module):
    """1x1 conv -> depth-wise 3x3 conv (the position information SegFormer has instead of position embeddings) ->
    GELU -> 1x1 conv, as MMSeg's ``layers`` Sequential (indices 0, 1, 4 hold weights)."""

    def __init__(self, embed_dims: int, hidden: int, drop: float, drop_path: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(embed_dims, hidden, 1),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            nn.GELU(),
            nn.Dropout(drop),
            nn.Conv2d(hidden, embed_dims, 1),
            nn.Dropout(drop),
        )
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int], identity: torch.Tensor) -> torch.Tensor:
        return identity + self.drop_path(_to_tokens(self.layers(_to_map(x, hw))))


class TransformerEncoderLayer(nn.Module):
    """Pre-norm block: ``norm1`` -> efficient attention, ``norm2`` -> Mix-FFN, each with its residual."""

    def __init__(self, embed_dims: int, num_heads: int, hidden: int, sr_ratio: int, qkv_bias: bool, drop: float,
                 attn_drop: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = EfficientMultiheadAttention(embed_dims, num_heads, sr_ratio, qkv_bias, attn_drop, drop, drop_path)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn = MixFFN(embed_dims, hidden, drop, drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = self.attn(self.norm1(x), hw, identity=x)
        return self.ffn(self.norm2(x), hw, identity=x)


def _check_lengths(num_stages: int, **lists: Sequence[Any]) -> None:
    for key, value in lists.items():
        if len(value) != num_stages:
            raise ValueError(f"model.{key}: needs one entry per stage (num_stages {num_stages}), got {list(value)}")


class MixVisionTransformer(nn.Module):
    """MMSeg's MiT encoder: per stage an overlapping patch embedding, ``num_layers[i]`` blocks and a LayerNorm;
    stage i has ``embed_dims * num_heads[i]`` channels. Returns every stage's map (strides 4, 8, 16, 32 with the
    default ``strides``). Defaults are MiT-B0."""

    def __init__(self, in_channels: int = 3, embed_dims: int = 32, num_stages: int = 4,
                 num_layers: Sequence[int] = (2, 2, 2, 2), num_heads: Sequence[int] = (1, 2, 5, 8),
                 patch_sizes: Sequence[int] = (7, 3, 3, 3), strides: Sequence[int] = (4, 2, 2, 2),
                 sr_ratios: Sequence[int] = (8, 4, 2, 1), mlp_ratio: float = 4, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1) -> None:
        super().__init__()
        _check_lengths(num_stages, num_layers=num_layers, num_heads=num_heads, patch_sizes=patch_sizes,
                       strides=strides, sr_ratios=sr_ratios)
        total = sum(num_layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear rule, as MMSeg
        self.channels = [embed_dims * heads for heads in num_heads]
        self.layers = nn.ModuleList()
        prev, cur = in_channels, 0
        for i, depth in enumerate(num_layers):
            dims = self.channels[i]
            blocks = nn.ModuleList(
                TransformerEncoderLayer(dims, num_heads[i], int(mlp_ratio * dims), sr_ratios[i], qkv_bias,
                                        drop_rate, attn_drop_rate, rates[cur + j]) for j in range(depth))
            self.layers.append(nn.ModuleList([PatchEmbed(prev, dims, patch_sizes[i], strides[i]), blocks,
                                              nn.LayerNorm(dims)]))
            prev, cur = dims, cur + depth
        self._init_weights()

    def _init_weights(self) -> None:
        # MMSeg's MiT init: truncated normal Linear, unit LayerNorm, He-style normal Conv2d by fan-out.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
                nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        x = images
        for stage in self.layers:
            patch_embed, blocks, norm = stage[0], stage[1], stage[2]  # type: ignore[index]  # a 3-module ModuleList
            tokens, hw = patch_embed(x)
            for block in blocks:
                tokens = block(tokens, hw)
            x = _to_map(norm(tokens), hw)
            outs.append(x)
        return outs


class SegformerHead(nn.Module):
    """All-MLP head: each stage 1x1-projected to ``channels`` (``convs``), upsampled to the first stage's size,
    concatenated, fused by a 1x1 ``fusion_conv``, then dropout and the 1x1 classifier ``conv_seg``."""

    def __init__(self, in_channels: Sequence[int], channels: int, num_classes: int, dropout_ratio: float) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvModule(c, channels, 1) for c in in_channels)
        self.fusion_conv = ConvModule(channels * len(in_channels), channels, 1)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        target = feats[0].shape[-2:]
        outs = [F.interpolate(conv(x), size=target, mode="bilinear", align_corners=False) if i else conv(x)
                for i, (conv, x) in enumerate(zip(self.convs, feats, strict=True))]
        logits = self.conv_seg(self.dropout(self.fusion_conv(torch.cat(outs, dim=1))))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegFormer(SegmentationModel):
    """SegFormer (MiT encoder + all-MLP head), MMSeg's ``segformer_mit-b0`` by default; the backbone arguments are
    MixVisionTransformer's, ``channels`` / ``dropout_ratio`` the head's. For small images shrink ``sr_ratios`` and
    ``strides`` with the image (the third stage of a 48 px image is 3x3)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        embed_dims: int = 32,
        num_stages: int = 4,
        num_layers: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (1, 2, 5, 8),
        patch_sizes: Sequence[int] = (7, 3, 3, 3),
        strides: Sequence[int] = (4, 2, 2, 2),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        mlp_ratio: float = 4,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        channels: int = 256,
        dropout_ratio: float = 0.1,
        ignore_index: int = 255,
        auxiliary_head: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
        init_cfg: dict[str, Any] | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, test_cfg)
        self.backbone = MixVisionTransformer(in_channels, embed_dims, num_stages, num_layers, num_heads, patch_sizes,
                                             strides, sr_ratios, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate,
                                             drop_path_rate)
        self.decode_head = SegformerHead(self.backbone.channels, channels, num_classes, dropout_ratio)
        self.add_auxiliary_head(auxiliary_head, self.backbone.channels)
        self.init_backbone(init_cfg, pretrained)

    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(images)

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.decode_head(feats, size)
