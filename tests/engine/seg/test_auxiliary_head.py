"""MMSeg's auxiliary FCN head: built on the chosen backbone stage, its loss weighted into `aux.loss_ce`, unused when
predicting, and its settings refused with the `model.auxiliary_head.<key>` at fault."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.seg.models.convnext import ConvNeXtSegmenter
from engine.seg.models.fcn import FCN
from engine.seg.models.segformer import SegFormer
from engine.seg.models.unet import UNet
from engine.seg.models.vit import ViTSegmenter

AUX = {"in_index": 1, "channels": 8, "num_convs": 1, "loss_weight": 0.4, "dropout_ratio": 0.1}
MAKERS = {
    "UNet": lambda **kw: UNet(4, base_channels=4, num_stages=3, **kw),
    "FCN": lambda **kw: FCN(4, base_channels=4, **kw),
    "ViTSegmenter": lambda **kw: ViTSegmenter(4, img_size=32, patch_size=8, embed_dims=16, num_layers=2,
                                              num_heads=2, **kw),
    "ConvNeXtSegmenter": lambda **kw: ConvNeXtSegmenter(4, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), **kw),
    "SegFormer": lambda **kw: SegFormer(4, embed_dims=8, num_heads=[1, 1, 2, 2], num_layers=[1, 1, 1, 1],
                                        channels=8, **kw),
}


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    masks = torch.randint(0, 4, (2, 32, 32))
    masks[:, :3] = 255
    return torch.randn(2, 3, 32, 32), masks


@pytest.mark.parametrize("name", list(MAKERS))
def test_weighted_aux_loss(name):
    torch.manual_seed(0)
    model = MAKERS[name](auxiliary_head=AUX).eval()  # eval: no dropout, so the terms can be recomputed exactly
    images, masks = _batch()
    out = model((images, masks), mode="loss")
    assert set(out) == {"loss_ce", "aux.loss_ce"}
    with torch.no_grad():
        feats = model.extract_feats(images)
        aux_logits = F.interpolate(model.auxiliary_head(feats), size=(32, 32), mode="bilinear", align_corners=False)
        aux = F.cross_entropy(aux_logits, masks, ignore_index=255)
        main = F.cross_entropy(model.predict_logits(images), masks, ignore_index=255)
    assert out["aux.loss_ce"].item() == pytest.approx(0.4 * aux.item(), rel=1e-5)
    assert out["loss_ce"].item() == pytest.approx(main.item(), rel=1e-5)
    (out["loss_ce"] + out["aux.loss_ce"]).backward()
    assert all(p.grad is not None for p in model.auxiliary_head.parameters())


@pytest.mark.parametrize("name", list(MAKERS))
def test_aux_head_is_unused_when_predicting(name):
    torch.manual_seed(0)
    plain = MAKERS[name]().eval()
    torch.manual_seed(0)
    with_aux = MAKERS[name](auxiliary_head=AUX).eval()
    # the aux head's parameters are the only extra ones; with the shared weights the predictions are the same
    extra = {k for k in with_aux.state_dict() if k.startswith("auxiliary_head.")}
    assert extra and set(with_aux.state_dict()) - extra == set(plain.state_dict())
    with_aux.load_state_dict({**plain.state_dict(), **{k: with_aux.state_dict()[k] for k in extra}})
    images, masks = _batch()
    with torch.no_grad():
        assert torch.equal(with_aux((images, masks), mode="predict"), plain((images, masks), mode="predict"))


def test_mmseg_names_and_defaults():
    model = ConvNeXtSegmenter(4, dims=(8, 16, 24, 32), auxiliary_head={"in_index": 2, "channels": 12})
    params = dict(model.named_parameters())
    assert params["auxiliary_head.convs.0.conv.weight"].shape == (12, 24, 3, 3)  # on the third stage's 24 channels
    assert "auxiliary_head.convs.0.bn.weight" in params and "auxiliary_head.conv_cat.conv.weight" not in params
    assert params["auxiliary_head.conv_seg.weight"].shape == (4, 12, 1, 1)
    assert model.aux_weight == 0.4  # MMSeg's configs' auxiliary loss_weight
    cat = FCN(4, base_channels=4, auxiliary_head={"in_index": 0, "channels": 8, "num_convs": 2, "concat_input": True})
    assert dict(cat.named_parameters())["auxiliary_head.conv_cat.conv.weight"].shape == (8, 8 + 8, 3, 3)


@pytest.mark.parametrize(("cfg", "message"), [
    ({"in_index": 4}, r"model.auxiliary_head.in_index: this model has 4 backbone feature maps"),
    ({"in_index": "2"}, r"model.auxiliary_head.in_index"),
    ({"channels": 0}, r"model.auxiliary_head.channels: must be a positive integer"),
    ({"loss_weight": -1}, r"model.auxiliary_head.loss_weight: must be a number >= 0"),
    ({"num_convs": 0, "channels": 5}, r"model.auxiliary_head.channels: with num_convs 0"),
    ({"loss_decode": {}}, r"model.auxiliary_head.loss_decode: not an auxiliary-head setting"),
    ({"type": "ASPPHead"}, r"model.auxiliary_head.type: the auxiliary head here is an FCNHead"),
    ([1], r"model.auxiliary_head: must be a mapping"),
])
def test_bad_settings(cfg, message):
    with pytest.raises(ValueError, match=message):
        ConvNeXtSegmenter(4, depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), auxiliary_head=cfg)
