"""A small ViT segmenter whose parameter names follow MMSeg's VisionTransformer (patch_embed, cls_token, layers.N)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.seg.models.base import SegmentationModel


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens; the conv is called ``projection`` as in MMSeg's ``PatchEmbed``."""

    def __init__(self, in_channels: int, embed_dims: int, patch_size: int) -> None:
        super().__init__()
        self.projection = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.projection(x)
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection."""

    def __init__(self, embed_dims: int, num_heads: int) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f"model.embed_dims={embed_dims} must be divisible by model.num_heads={num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(embed_dims, embed_dims * 3)
        self.proj = nn.Linear(embed_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class FFN(nn.Module):
    """Two-layer MLP of a transformer block."""

    def __init__(self, embed_dims: int, hidden_dims: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerEncoderLayer(nn.Module):
    """Pre-norm block; the norms are ``ln1``/``ln2`` as in MMSeg, so a ``norm`` custom key does not match them."""

    def __init__(self, embed_dims: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dims)
        self.attn = Attention(embed_dims, num_heads)
        self.ln2 = nn.LayerNorm(embed_dims)
        self.ffn = FFN(embed_dims, int(embed_dims * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class VisionTransformer(nn.Module):
    """Plain ViT encoder returning the patch tokens after each layer as ``(N, D, H/p, W/p)`` feature maps (the last
    one after the final norm, as MMSeg's ``final_norm``).

    ``layer_decay_style`` tells the layer-wise LR decay constructor which layer-id table applies (MMSeg's BEiT/MAE one).
    """

    layer_decay_style = "vit"

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        in_channels: int,
        embed_dims: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"model.img_size={img_size} must be divisible by model.patch_size={patch_size}")
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, embed_dims))
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(embed_dims, num_heads, mlp_ratio) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dims)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def _resized_pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        # Inputs of another size than img_size get the grid part of pos_embed resampled, as MMSeg does at test time.
        if grid == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=grid, mode="bilinear", align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        tokens, grid = self.patch_embed(images)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1) + self._resized_pos_embed(grid)
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            out = self.norm(x) if i == len(self.layers) - 1 else x
            out = out[:, 1:]  # the cls token carries no spatial information for segmentation
            outs.append(out.transpose(1, 2).reshape(out.shape[0], -1, grid[0], grid[1]))
        return outs


class ViTDecodeHead(nn.Module):
    """SETR-naive style head: conv-BN-ReLU on the token map, 1x1 classifier, bilinear upsampling to the input."""

    def __init__(self, embed_dims: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(embed_dims, embed_dims, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(embed_dims)
        self.act = nn.ReLU(inplace=True)
        self.conv_seg = nn.Conv2d(embed_dims, num_classes, kernel_size=1)

    def forward(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        logits = self.conv_seg(self.act(self.bn(self.conv(feats))))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class ViTSegmenter(SegmentationModel):
    """ViT encoder + light decode head; parameter names match MMSeg's ViT so its custom_keys and layer decay apply.

    The decode head reads the last layer's tokens; ``auxiliary_head.in_index`` picks any layer's (``-2``: the one
    before the last)."""

    def __init__(
        self,
        num_classes: int,
        img_size: int = 64,
        patch_size: int = 8,
        embed_dims: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4,
        ignore_index: int = 255,
        in_channels: int = 3,
        auxiliary_head: dict[str, Any] | None = None,
        test_cfg: dict[str, Any] | None = None,
        init_cfg: dict[str, Any] | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__(num_classes, ignore_index, test_cfg)
        if num_layers < 1:
            raise ValueError(f"model.num_layers: must be >= 1, got {num_layers}")
        self.backbone = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
        )
        self.decode_head = ViTDecodeHead(embed_dims, num_classes)
        self.add_auxiliary_head(auxiliary_head, [embed_dims] * num_layers)
        self.init_backbone(init_cfg, pretrained)

    def extract_feats(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.backbone(images)

    def decode(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        return self.decode_head(feats[-1], size)
