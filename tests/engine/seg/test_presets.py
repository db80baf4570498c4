"""The shipped model presets (configs/*.yaml) pass the check, and their param-wise rules land where MMSeg's recipes
put them: what `trainline param-groups` shows for each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def _rows(name: str) -> dict[str, dict]:
    result = CliRunner().invoke(main, ["param-groups", "--params", str(CONFIGS / name), "--json"])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


def _check(name: str) -> None:
    result = CliRunner().invoke(main, ["check", "--params", str(CONFIGS / name)])
    assert result.exit_code == 0, result.output


def test_segformer_preset_has_mmseg_segformer_rules():
    _check("segformer_shapes.yaml")
    rows = _rows("segformer_shapes.yaml")
    base = rows["backbone.layers.0.0.projection.weight"]
    assert base["rule"] == "default"
    lr, wd = base["lr"], base["weight_decay"]
    assert wd > 0
    for name in ("backbone.layers.0.0.norm.weight", "backbone.layers.2.1.1.norm1.bias",
                 "backbone.layers.0.1.0.attn.norm.weight", "backbone.layers.3.1.0.norm2.weight"):
        assert (rows[name]["lr"], rows[name]["weight_decay"], rows[name]["rule"]) == (lr, 0.0, "custom_keys['norm']")
    for name in ("decode_head.convs.3.conv.weight", "decode_head.fusion_conv.bn.bias", "decode_head.conv_seg.weight"):
        assert rows[name]["lr"] == pytest.approx(10 * lr) and rows[name]["rule"] == "custom_keys['head']"
        assert rows[name]["weight_decay"] == wd
    assert rows["backbone.layers.1.2.weight"]["rule"] == "default"  # the stage norm is named by position, as MMSeg
    assert rows["backbone.layers.1.1.0.attn.attn.in_proj_weight"]["rule"] == "default"


def test_vit_preset_has_layer_wise_decay():
    _check("vit_shapes_layer_decay.yaml")
    rows = _rows("vit_shapes_layer_decay.yaml")
    head = rows["decode_head.conv_seg.weight"]
    num_layers = sum(1 for n in rows if n.startswith("backbone.layers.") and n.endswith(".ln1.weight"))
    assert head["rule"] == f"layer_wise layer_{num_layers + 1}_decay"
    rate = rows[f"backbone.layers.{num_layers - 1}.attn.qkv.weight"]["lr"] / head["lr"]
    assert 0 < rate < 1
    assert rows["backbone.layers.0.attn.qkv.weight"]["lr"] == pytest.approx(head["lr"] * rate**num_layers)
    assert rows["backbone.pos_embed"]["lr"] == pytest.approx(head["lr"] * rate ** (num_layers + 1))
    assert rows["backbone.pos_embed"]["weight_decay"] == 0.0 and rows["backbone.cls_token"]["weight_decay"] == 0.0
    assert rows["backbone.layers.0.ln1.weight"]["weight_decay"] == 0.0  # 1-D: no decay


def test_convnext_preset_has_stage_wise_decay():
    _check("convnext_shapes_stage_decay.yaml")
    rows = _rows("convnext_shapes_stage_decay.yaml")
    head = rows["decode_head.conv_seg.weight"]
    assert head["rule"].startswith("stage_wise layer_") and head["rule"].endswith("_decay")
    top = int(head["rule"].split("layer_")[1].split("_")[0])  # num_layers + 1
    for stage in range(4):
        row = rows[f"backbone.stages.{stage}.0.pwconv1.weight"]
        assert row["rule"] == f"stage_wise layer_{stage + 1}_decay"
        rate = (row["lr"] / head["lr"]) ** (1 / (top - stage - 1))
        assert rate == pytest.approx(0.9)
    assert rows["backbone.downsample_layers.2.1.weight"]["rule"] == "stage_wise layer_0_decay"
    assert rows["backbone.stages.1.0.gamma"]["weight_decay"] == 0.0
