"""Layer-wise / stage-wise LR decay (MMSeg's LearningRateDecayOptimizerConstructor) on the ViT and ConvNeXt models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.errors import UserError
from engine.optim.constructors import build_param_groups, paramwise_problems
from engine.optim.layer_decay import (
    backbone_style,
    layer_id_for_convnext,
    layer_id_for_vit,
    stage_id_for_convnext,
)
from engine.seg.models.convnext import ConvNeXtSegmenter
from engine.seg.models.vit import ViTSegmenter

LD = "LearningRateDecayOptimizerConstructor"
LR, WD, RATE = 1e-3, 0.05, 0.9


def small_vit(num_layers: int = 3) -> ViTSegmenter:
    return ViTSegmenter(3, img_size=16, patch_size=8, embed_dims=8, num_layers=num_layers, num_heads=2)


def build(model: nn.Module, cfg: dict, optim: dict | None = None) -> tuple[list[dict], dict]:
    groups, rules = build_param_groups(model, optim or {"lr": LR, "weight_decay": WD}, cfg, LD)
    return groups, {r.name: r for r in rules}


def test_vit_layer_wise_scales_and_no_decay():
    n = 3
    groups, r = build(small_vit(n), {"decay_rate": RATE, "num_layers": n})
    top = RATE ** (n + 1)
    for name in ("backbone.pos_embed", "backbone.cls_token", "backbone.patch_embed.projection.weight"):
        assert r[name].lr == pytest.approx(LR * top), name
    for i in range(n):
        assert r[f"backbone.layers.{i}.attn.qkv.weight"].lr == pytest.approx(LR * RATE ** (n - i))
        assert r[f"backbone.layers.{i}.ln1.weight"].lr == pytest.approx(LR * RATE ** (n - i))
    for name in ("backbone.norm.weight", "decode_head.conv.weight", "decode_head.conv_seg.bias"):
        assert r[name].lr == LR
    # MMSeg meant to exempt pos_embed/cls_token but never matched full names; we do what it intends.
    assert r["backbone.pos_embed"].weight_decay == 0.0 and r["backbone.cls_token"].weight_decay == 0.0
    assert r["backbone.patch_embed.projection.weight"].weight_decay == WD
    assert r["backbone.patch_embed.projection.bias"].weight_decay == 0.0
    assert r["backbone.layers.0.ln1.weight"].weight_decay == 0.0  # 1-D
    assert r["backbone.layers.1.ffn.fc1.weight"].rule == "layer_wise layer_2_decay"
    assert r["backbone.pos_embed"].rule == "layer_wise layer_0_no_decay (pos_embed/cls_token)"
    names = [g["group_name"] for g in groups]
    assert names[:3] == ["layer_0_no_decay", "layer_0_decay", "layer_1_no_decay"]
    assert len(names) == len(set(names)) == 2 * (n + 2)
    for g in groups:
        assert g["lr"] == pytest.approx(LR * g["lr_scale"])
    opt = torch.optim.AdamW(groups, lr=LR, weight_decay=WD)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(r)


def test_vit_layer_ids():
    assert layer_id_for_vit("backbone.cls_token", 12) == 0
    assert layer_id_for_vit("backbone.mask_token", 12) == 0
    assert layer_id_for_vit("backbone.patch_embed.projection.weight", 12) == 0
    assert layer_id_for_vit("backbone.layers.0.ln1.weight", 12) == 1
    assert layer_id_for_vit("backbone.layers.11.ffn.fc2.bias", 12) == 12
    assert layer_id_for_vit("backbone.norm.weight", 12) == 13
    assert layer_id_for_vit("decode_head.conv_seg.weight", 12) == 13


def test_convnext_layer_wise_ids():
    f = layer_id_for_convnext
    assert f("backbone.downsample_layers.0.0.weight", 12) == 0
    assert f("backbone.downsample_layers.1.1.weight", 12) == 2
    assert f("backbone.downsample_layers.2.1.bias", 12) == 3
    assert f("backbone.downsample_layers.3.0.weight", 12) == 12
    assert f("backbone.stages.0.2.dwconv.weight", 12) == 1
    assert f("backbone.stages.1.0.gamma", 12) == 2
    assert f("backbone.stages.2.0.pwconv1.weight", 12) == 3
    assert f("backbone.stages.2.5.pwconv1.weight", 12) == 4
    assert f("backbone.stages.2.26.norm.weight", 12) == 11
    assert f("backbone.stages.3.1.dwconv.weight", 12) == 12
    assert f("backbone.pos_embed", 12) == 0
    assert f("decode_head.fuse.weight", 12) == 13


def test_convnext_stage_wise_ids_and_mmseg_scales():
    f = stage_id_for_convnext
    assert f("backbone.downsample_layers.3.1.weight", 12) == 0
    assert [f(f"backbone.stages.{s}.0.dwconv.weight", 12) for s in range(4)] == [1, 2, 3, 4]
    assert f("decode_head.conv_seg.weight", 12) == 13
    # MMSeg's ConvNeXt-UperNet settings: stage3 -> 0.9^9, stage0 -> 0.9^12, stem/downsample -> 0.9^13.
    _, r = build(ConvNeXtSegmenter(3), {"decay_rate": 0.9, "decay_type": "stage_wise", "num_layers": 12},
                 {"lr": 1e-4, "weight_decay": 0.05})
    assert r["backbone.stages.3.0.pwconv1.weight"].lr == pytest.approx(1e-4 * 0.9**9)
    assert r["backbone.stages.0.0.dwconv.weight"].lr == pytest.approx(1e-4 * 0.9**12)
    assert r["backbone.downsample_layers.0.0.weight"].lr == pytest.approx(1e-4 * 0.9**13)
    assert r["decode_head.conv_seg.weight"].lr == 1e-4
    assert r["backbone.stages.2.1.gamma"].weight_decay == 0.0
    assert r["backbone.stages.2.1.dwconv.weight"].weight_decay == 0.05


def test_convnext_layer_wise_groups():
    _, r = build(ConvNeXtSegmenter(3), {"decay_rate": RATE, "decay_type": "layer_wise", "num_layers": 6})
    assert r["backbone.downsample_layers.0.0.weight"].lr == pytest.approx(LR * RATE**7)
    assert r["backbone.stages.2.2.pwconv2.weight"].lr == pytest.approx(LR * RATE**4)  # id 3
    assert r["backbone.stages.3.0.pwconv2.weight"].lr == pytest.approx(LR * RATE)  # id num_layers
    assert r["decode_head.fuse.weight"].lr == LR


def test_frozen_skipped_and_default_weight_decay():
    model = small_vit(2)
    model.backbone.patch_embed.requires_grad_(False)
    groups, r = build(model, {"decay_rate": RATE, "num_layers": 2}, {"lr": LR})
    assert r["backbone.patch_embed.projection.weight"].rule.startswith("frozen")
    assert all("backbone.patch_embed.projection.weight" not in g["param_names"] for g in groups)
    for g in groups:  # without optim.weight_decay, decay groups leave it to the optimizer's default
        assert g.get("weight_decay", "absent") == (0.0 if g["group_name"].endswith("no_decay") else "absent")
    opt = torch.optim.AdamW(groups, lr=LR)
    assert {g["weight_decay"] for g in opt.param_groups} == {0.0, 0.01}


class Plain(nn.Module):
    def __init__(self, backbone: nn.Module | None) -> None:
        super().__init__()
        if backbone is not None:
            self.backbone = backbone
        self.head = nn.Linear(2, 2)


class MyConvNeXtish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([nn.Linear(2, 2)])


def test_backbone_dispatch_and_errors():
    assert backbone_style(small_vit(1)) == "vit"
    assert backbone_style(ConvNeXtSegmenter(3)) == "convnext"
    assert backbone_style(Plain(MyConvNeXtish())) == "convnext"  # MMSeg's class-name test as a fallback
    with pytest.raises(ValueError, match="ViT- and ConvNeXt-style backbones only; model.backbone is Linear"):
        build(Plain(nn.Linear(2, 2)), {"decay_rate": RATE, "num_layers": 2})
    with pytest.raises(ValueError, match="needs a model with a `backbone` submodule; Plain has none"):
        build(Plain(None), {"decay_rate": RATE, "num_layers": 2})
    with pytest.raises(ValueError, match="'stage_wise' needs a ConvNeXt-style backbone"):
        build(small_vit(1), {"decay_rate": RATE, "num_layers": 2, "decay_type": "stage_wise"})
    with pytest.raises(ValueError, match=r"num_layers: 1 is too small .* backbone.layers.2.* set num_layers >= 2"):
        build(small_vit(3), {"decay_rate": RATE, "num_layers": 1})


def test_layer_decay_problems():
    p = paramwise_problems(None, {"lr": LR}, LD)
    assert p == [
        "optim_wrapper.paramwise_cfg.num_layers: required with LearningRateDecayOptimizerConstructor "
        "(optim_wrapper.constructor): the backbone depth, e.g. 12",
        "optim_wrapper.paramwise_cfg.decay_rate: required with LearningRateDecayOptimizerConstructor "
        "(optim_wrapper.constructor): a number in (0, 1], e.g. 0.9",
    ]
    cfg = {"layer_decay_rate": 0.9, "custom_keys": {}, "num_layers": 2.5, "decay_type": "stagewise"}
    p = paramwise_problems(cfg, {}, LD)
    assert any(m.startswith("optim_wrapper.paramwise_cfg.layer_decay_rate: unknown key") and
               "(did you mean 'decay_rate'?)" in m for m in p)
    assert any(m.startswith("optim_wrapper.paramwise_cfg.custom_keys: 'custom_keys' is ignored") for m in p)
    assert "optim_wrapper.paramwise_cfg.num_layers: must be an integer >= 1, got 2.5" in p
    assert ("optim_wrapper.paramwise_cfg.decay_type: must be one of layer_wise, layer_wise_vit, stage_wise, "
            "got 'stagewise' (did you mean 'stage_wise'?)") in p
    assert any(m.startswith("optim.lr: required") for m in p)
    p = paramwise_problems({"decay_rate": 1.5, "num_layers": 4}, {"lr": LR}, LD)
    assert p == ["optim_wrapper.paramwise_cfg.decay_rate: must be a number in (0, 1], got 1.5"]
    ok = {"decay_rate": 0.9, "num_layers": 4, "decay_type": "layer_wise_vit"}
    assert paramwise_problems(ok, {"lr": LR}, LD) == []
    with pytest.raises(ValueError, match="decay_rate: required"):
        build(small_vit(1), {"num_layers": 2})


class NamedOtherwise(nn.Module):
    """Claims the ViT layout but names its blocks `blocks.<i>`: no parameter falls in a layer the table knows."""

    layer_decay_style = "vit"

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])


def test_a_backbone_without_known_layers_is_refused_rather_than_left_undecayed():
    with pytest.raises(UserError, match=r"^optim_wrapper.constructor: no parameter of model.backbone "
                                        r"\(NamedOtherwise\) is in a layer the layer_wise table knows"):
        build(Plain(NamedOtherwise()), {"decay_rate": RATE, "num_layers": 2})
