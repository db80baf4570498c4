"""UNet and FCN: logits at input resolution, loss mode, the registry and a quick overfit sanity check."""

from __future__ import annotations

import pytest
import torch

from engine.seg.models import FCN, MODELS, UNet
from engine.seg.models.base import SegmentationModel


def make_unet(**kw) -> UNet:
    return UNet(4, base_channels=4, num_stages=3, **kw)


def make_fcn(**kw) -> FCN:
    return FCN(4, base_channels=4, **kw)


def test_registry():
    assert MODELS["UNet"] is UNet and MODELS["FCN"] is FCN
    assert all(issubclass(cls, SegmentationModel) for cls in MODELS.values())


@pytest.mark.parametrize("make", [make_unet, make_fcn])
@pytest.mark.parametrize("size", [(32, 32), (24, 40), (30, 33)])
def test_logits_at_input_resolution(make, size):
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        logits = model.predict_logits(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4, *size) and torch.isfinite(logits).all()


@pytest.mark.parametrize("make", [make_unet, make_fcn])
def test_loss_mode_respects_ignore_index(make):
    torch.manual_seed(0)
    model = make()
    images = torch.randn(2, 3, 16, 16)
    masks = torch.randint(0, 4, (2, 16, 16))
    out = model((images, masks), mode="loss")
    assert set(out) == {"loss_ce"} and out["loss_ce"].ndim == 0 and out["loss_ce"] > 0
    out["loss_ce"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with torch.no_grad():
        all_ignored = model((images, torch.full_like(masks, 255)), mode="loss")["loss_ce"]
    assert torch.isnan(all_ignored)  # mean over zero counted pixels, as F.cross_entropy defines it


def test_unet_widths_and_layout():
    model = UNet(3, in_channels=1, base_channels=8, num_stages=4)
    assert [enc[0].out_channels for enc in model.encoders] == [8, 16, 32, 64]
    assert model.encoders[0][0].in_channels == 1 and model.head.out_channels == 3
    assert model.encoders[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    plain = UNet(3, channels_last=False)
    assert plain.encoders[0][0].weight.is_contiguous()
    with pytest.raises(ValueError):
        UNet(3, num_stages=0)


@pytest.mark.parametrize("make", [make_unet, make_fcn])
def test_overfits_a_tiny_batch(make):
    torch.manual_seed(0)
    model = make(**({"dropout": 0.0} if make is make_fcn else {}))
    masks = torch.zeros(2, 16, 16, dtype=torch.long)
    masks[0, :, 8:] = 1
    masks[1, 4:12, 4:12] = 2
    # Regions brighter than their surroundings: learnable even at FCN's output stride in a few steps.
    images = torch.randn(2, 3, 16, 16) * 0.3 + masks[:, None].float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model((images, masks), mode="loss")["loss_ce"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_predict_mode_gives_label_maps():
    torch.manual_seed(0)
    model = make_unet().eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        labels = model((images, torch.zeros(2, 16, 16, dtype=torch.long)), mode="predict")
        assert torch.equal(labels, model.predict_logits(images).argmax(dim=1))
    with pytest.raises(ValueError, match="mode must be 'loss' or 'predict'"):
        model((images, None), mode="tensor")
