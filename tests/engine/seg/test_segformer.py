"""SegFormer: output shapes, MMSeg's MiT / SegformerHead parameter names, and MMSeg's SegFormer paramwise_cfg
applied unchanged (which parameters get which rule, as `trainline param-groups` shows them)."""

from __future__ import annotations

import pytest
import torch

from engine.config.validate import check_params
from engine.optim.constructors import build_param_groups
from engine.seg.models.segformer import SegFormer
from tests.conftest import apply_overrides, shipped_params

SMALL = {"embed_dims": 8, "num_heads": [1, 2, 2, 4], "num_layers": [1, 2, 1, 1], "channels": 16}
# MMSeg's configs/segformer/segformer_mit-b0_8xb2-160k_ade20k-512x512.py optimizer settings.
MMSEG_PARAMWISE = {"custom_keys": {"pos_block": {"decay_mult": 0.0}, "norm": {"decay_mult": 0.0},
                                   "head": {"lr_mult": 10.0}}}


@pytest.mark.parametrize("size", [(48, 48), (40, 64)])
def test_logits_at_input_resolution(size):
    torch.manual_seed(0)
    model = SegFormer(4, **SMALL).eval()
    with torch.no_grad():
        logits = model.predict_logits(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4, *size) and torch.isfinite(logits).all()


def test_loss_mode_reaches_every_parameter():
    torch.manual_seed(0)
    model = SegFormer(4, **SMALL)
    masks = torch.randint(0, 4, (2, 32, 32))
    out = model((torch.randn(2, 3, 32, 32), masks), mode="loss")
    assert set(out) == {"loss_ce"}
    out["loss_ce"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_mit_b0_defaults():
    model = SegFormer(19)
    assert model.backbone.channels == [32, 64, 160, 256]
    params = dict(model.named_parameters())
    assert 3.6e6 < sum(p.numel() for p in params.values()) < 3.8e6  # MiT-B0 + the 256-channel head: 3.7M
    assert params["backbone.layers.0.0.projection.weight"].shape == (32, 3, 7, 7)
    assert params["backbone.layers.1.0.projection.weight"].shape == (64, 32, 3, 3)
    assert params["backbone.layers.0.1.0.attn.sr.weight"].shape == (32, 32, 8, 8)
    assert "backbone.layers.3.1.0.attn.sr.weight" not in params  # sr_ratio 1: plain attention
    # Mix-FFN: 1x1 up (x4), depth-wise 3x3, 1x1 down
    assert params["backbone.layers.2.1.1.ffn.layers.0.weight"].shape == (640, 160, 1, 1)
    assert params["backbone.layers.2.1.1.ffn.layers.1.weight"].shape == (640, 1, 3, 3)
    assert params["backbone.layers.2.1.1.ffn.layers.4.weight"].shape == (160, 640, 1, 1)
    assert params["backbone.layers.3.2.weight"].shape == (256,)
    assert params["decode_head.fusion_conv.conv.weight"].shape == (256, 1024, 1, 1)
    assert params["decode_head.conv_seg.weight"].shape == (19, 256, 1, 1)
    for i in range(4):
        assert f"decode_head.convs.{i}.bn.weight" in params
        assert len(model.backbone.layers[i][1]) == 2


def test_stage_lists_must_match_num_stages():
    with pytest.raises(ValueError, match=r"model.sr_ratios: needs one entry per stage \(num_stages 4\)"):
        SegFormer(4, sr_ratios=[8, 4, 2])


def test_mmseg_paramwise_cfg_applies_unchanged():
    cfg, _ = check_params(apply_overrides(shipped_params(), {
        "model": {"_delete_": True, "type": "SegFormer", **SMALL},
        "optim": {"type": "AdamW", "lr": 6e-05, "betas": [0.9, 0.999], "weight_decay": 0.01},
        "optim_wrapper": {"paramwise_cfg": MMSEG_PARAMWISE},
    }), data=False)
    model = SegFormer(4, **SMALL)
    _, rules = build_param_groups(model, {"lr": 6e-05, "weight_decay": 0.01}, cfg["optim_wrapper"]["paramwise_cfg"])
    by_name = {r.name: (r.lr, r.weight_decay, r.rule) for r in rules}
    assert set(by_name) == {n for n, _ in model.named_parameters()}
    norm, head = (6e-05, 0.0, "custom_keys['norm']"), (pytest.approx(6e-04), 0.01, "custom_keys['head']")
    default = (6e-05, 0.01, "default")
    for name in ("backbone.layers.0.0.norm.weight", "backbone.layers.1.1.1.norm1.bias",
                 "backbone.layers.0.1.0.norm2.weight", "backbone.layers.0.1.0.attn.norm.weight"):
        assert by_name[name] == norm, name
    for name in ("backbone.layers.0.0.projection.weight", "backbone.layers.0.1.0.attn.attn.in_proj_weight",
                 "backbone.layers.0.1.0.attn.sr.weight", "backbone.layers.2.1.0.ffn.layers.1.weight",
                 # the stage's final LayerNorm is named by position, so `norm` does not reach it (as in MMSeg)
                 "backbone.layers.3.2.weight"):
        assert by_name[name] == default, name
    for name in ("decode_head.convs.0.conv.weight", "decode_head.fusion_conv.bn.weight", "decode_head.conv_seg.bias"):
        assert by_name[name] == head, name
    assert not any(rule.endswith("['pos_block']") for _, _, rule in by_name.values())  # no such name in MiT
