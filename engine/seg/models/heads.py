"""MMSeg's building blocks shared by the heads: ``ConvModule`` (conv-BN-ReLU) and ``FCNHead``, the auxiliary head.

Parameter names follow MMSeg (``convs.0.conv.weight``, ``convs.0.bn.weight``, ``conv_cat``, ``conv_seg``), so
param-wise rules written for MMSeg configs (``custom_keys: {head: ...}``) match them unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

# `auxiliary_head` keys and their defaults: MMSeg's FCNHead arguments that mean something here. `loss_weight` is
# MMSeg's `loss_decode.loss_weight`; 0.4 is what every MMSeg config with an auxiliary head uses.
AUX_DEFAULTS: dict[str, Any] = {
    "in_index": -2, "channels": 64, "num_convs": 1, "kernel_size": 3, "dilation": 1, "concat_input": False,
    "dropout_ratio": 0.1, "loss_weight": 0.4,
}
_AUX_PATH = "model.auxiliary_head"


class ConvModule(nn.Module):
    """Conv (no bias: the BatchNorm's shift replaces it, as MMCV's ``bias='auto'``) -> BatchNorm -> optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0,
                 dilation: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.activate = nn.ReLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class FCNHead(nn.Module):
    """MMSeg's FCNHead: ``num_convs`` conv modules on feature ``in_index``, optionally concatenated with the input
    (``conv_cat``), dropout, and a 1x1 classifier ``conv_seg``. Logits stay at the feature's resolution."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, in_index: int, num_convs: int = 2,
                 kernel_size: int = 3, dilation: int = 1, concat_input: bool = True,
                 dropout_ratio: float = 0.1) -> None:
        super().__init__()
        if num_convs < 0:
            raise ValueError(f"{_AUX_PATH}.num_convs: must be >= 0, got {num_convs}")
        if num_convs == 0 and in_channels != channels:
            raise ValueError(f"{_AUX_PATH}.channels: with num_convs 0 it must equal the input's {in_channels} "
                             f"channels, got {channels}")
        self.in_index = in_index
        padding = (kernel_size // 2) * dilation
        convs = [ConvModule(in_channels if i == 0 else channels, channels, kernel_size, padding, dilation)
                 for i in range(num_convs)]
        self.convs: nn.Module = nn.Sequential(*convs) if convs else nn.Identity()
        self.concat_input = concat_input
        if concat_input:
            self.conv_cat = ConvModule(in_channels + channels, channels, kernel_size, kernel_size // 2)
        self.dropout = nn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, kernel_size=1)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[self.in_index]
        out = self.convs(x)
        if self.concat_input:
            out = self.conv_cat(torch.cat([x, out], dim=1))
        return self.conv_seg(self.dropout(out))


def build_auxiliary_head(cfg: dict[str, Any], feature_channels: Sequence[int],
                         num_classes: int) -> tuple[FCNHead, float]:
    """The FCNHead of `model.auxiliary_head` on one of the backbone's `feature_channels`, and its loss weight.

    Raises ValueError naming the `model.auxiliary_head.<key>` that is wrong (the check reports it as it is)."""
    if not isinstance(cfg, dict):
        raise ValueError(f"{_AUX_PATH}: must be a mapping of FCNHead settings ({', '.join(AUX_DEFAULTS)}), "
                         f"got {cfg!r}")
    if cfg.get("type", "FCNHead") not in ("FCNHead", "mmseg.FCNHead"):
        raise ValueError(f"{_AUX_PATH}.type: the auxiliary head here is an FCNHead, got {cfg['type']!r}")
    cfg = {k: v for k, v in cfg.items() if k != "type"}
    unknown = sorted(set(cfg) - set(AUX_DEFAULTS))
    if unknown:
        raise ValueError(f"{_AUX_PATH}.{unknown[0]}: not an auxiliary-head setting (an FCNHead); valid: "
                         f"type: FCNHead, {', '.join(AUX_DEFAULTS)}")
    s = {**AUX_DEFAULTS, **cfg}
    n = len(feature_channels)
    index = s["in_index"]
    if isinstance(index, bool) or not isinstance(index, int) or not -n <= index < n:
        raise ValueError(f"{_AUX_PATH}.in_index: this model has {n} backbone feature maps (channels "
                         f"{list(feature_channels)}), so in_index must be an integer from {-n} to {n - 1}, got "
                         f"{index!r}")
    for key in ("channels", "kernel_size", "dilation"):
        if isinstance(s[key], bool) or not isinstance(s[key], int) or s[key] < 1:
            raise ValueError(f"{_AUX_PATH}.{key}: must be a positive integer, got {s[key]!r}")
    weight = s["loss_weight"]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise ValueError(f"{_AUX_PATH}.loss_weight: must be a number >= 0, got {weight!r}")
    if not 0 <= s["dropout_ratio"] < 1:
        raise ValueError(f"{_AUX_PATH}.dropout_ratio: must be in [0, 1), got {s['dropout_ratio']!r}")
    head = FCNHead(feature_channels[index], s["channels"], num_classes, index, num_convs=s["num_convs"],
                   kernel_size=s["kernel_size"], dilation=s["dilation"], concat_input=bool(s["concat_input"]),
                   dropout_ratio=float(s["dropout_ratio"]))
    return head, float(weight)
