"""ViTSegmenter and ConvNeXtSegmenter: output shapes, loss mode, and the MMSeg-style parameter names rules rely on."""

from __future__ import annotations

import pytest
import torch

from engine.seg.models.convnext import ConvNeXtSegmenter
from engine.seg.models.vit import ViTSegmenter


def small_vit(**kw) -> ViTSegmenter:
    return ViTSegmenter(4, img_size=32, patch_size=8, embed_dims=16, num_layers=2, num_heads=2, **kw)


def small_convnext(**kw) -> ConvNeXtSegmenter:
    return ConvNeXtSegmenter(4, depths=(1, 1, 2, 1), dims=(8, 8, 16, 16), **kw)


@pytest.mark.parametrize("make", [small_vit, small_convnext])
@pytest.mark.parametrize("size", [(32, 32), (40, 64)])
def test_logits_at_input_resolution(make, size):
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        logits = model.predict_logits(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4, *size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("make", [small_vit, small_convnext])
def test_loss_mode(make):
    torch.manual_seed(0)
    model = make(ignore_index=255)
    masks = torch.randint(0, 4, (2, 32, 32))
    masks[:, :4] = 255
    out = model((torch.randn(2, 3, 32, 32), masks), mode="loss")
    assert set(out) == {"loss_ce"}
    assert out["loss_ce"].ndim == 0 and torch.isfinite(out["loss_ce"])
    out["loss_ce"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_vit_parameter_names():
    model = ViTSegmenter(5)  # defaults: img 64, patch 8, 64 dims, 4 layers
    params = dict(model.named_parameters())
    assert params["backbone.cls_token"].shape == (1, 1, 64)
    assert params["backbone.pos_embed"].shape == (1, 1 + 8 * 8, 64)
    assert params["backbone.patch_embed.projection.weight"].shape == (64, 3, 8, 8)
    for i in range(4):
        for part in ("ln1.weight", "ln2.bias", "attn.qkv.weight", "attn.proj.bias", "ffn.fc1.weight", "ffn.fc2.bias"):
            assert f"backbone.layers.{i}.{part}" in params
    assert "backbone.layers.4.ln1.weight" not in params
    assert {"backbone.norm.weight", "backbone.norm.bias", "decode_head.conv_seg.weight"} <= set(params)
    assert params["decode_head.conv_seg.weight"].shape[0] == 5
    assert model.backbone.layer_decay_style == "vit"


def test_convnext_parameter_names():
    model = ConvNeXtSegmenter(5)  # defaults: depths (1, 1, 3, 1), dims (16, 32, 64, 128)
    params = dict(model.named_parameters())
    for s in range(4):
        assert f"backbone.downsample_layers.{s}.0.weight" in params
    for s, depth in enumerate((1, 1, 3, 1)):
        for b in range(depth):
            for part in ("dwconv.weight", "norm.weight", "pwconv1.weight", "pwconv2.bias", "gamma"):
                assert f"backbone.stages.{s}.{b}.{part}" in params
    assert "backbone.stages.2.3.gamma" not in params
    dw = model.backbone.stages[2][0].dwconv
    assert dw.kernel_size == (7, 7) and dw.groups == dw.in_channels == 64
    assert model.backbone.stages[0][0].gamma.ndim == 1
    assert params["decode_head.conv_seg.weight"].shape[0] == 5
    assert model.backbone.layer_decay_style == "convnext"


def test_bad_kwargs():
    with pytest.raises(ValueError, match="embed_dims=10 must be divisible by model.num_heads=4"):
        ViTSegmenter(2, embed_dims=10)
    with pytest.raises(ValueError, match="img_size=60 must be divisible by model.patch_size=8"):
        ViTSegmenter(2, img_size=60)
    with pytest.raises(ValueError, match="must both have 4 entries"):
        ConvNeXtSegmenter(2, depths=(1, 1, 1))
