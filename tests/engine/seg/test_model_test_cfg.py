"""`model.test_cfg` (MMSeg's whole / slide inference) in predict mode, and scoring at the label map's size."""

from __future__ import annotations

import pytest
import torch

from engine.seg.inference import slide_logits
from engine.seg.models.fcn import FCN
from engine.seg.models.segformer import SegFormer


def _fcn(**kw) -> FCN:
    torch.manual_seed(0)
    return FCN(4, base_channels=4, **kw).eval()


def test_slide_predicts_from_windows():
    images, masks = torch.randn(2, 3, 40, 56), torch.zeros(2, 40, 56, dtype=torch.long)
    model = _fcn(test_cfg={"mode": "slide", "crop_size": [32, 32], "stride": [16, 24]})
    with torch.no_grad():
        labels = model((images, masks), mode="predict")
        got = model.inference_logits(images)
        want = torch.stack([slide_logits(model.predict_logits, image, (32, 32), (16, 24)) for image in images])
        whole = model.predict_logits(images)
    assert torch.equal(got, want) and torch.equal(labels, want.argmax(1))
    assert not torch.allclose(got, whole)  # windows see less context than the whole image: the logits differ


def test_slide_with_a_crop_covering_the_image_is_whole_inference():
    images, masks = torch.randn(2, 3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.long)
    slide = _fcn(test_cfg={"mode": "slide", "crop_size": 48, "stride": 32})
    whole = _fcn(test_cfg={"mode": "whole"})
    with torch.no_grad():
        assert torch.equal(slide((images, masks), mode="predict"), whole((images, masks), mode="predict"))


def test_predict_scores_at_the_label_size():
    torch.manual_seed(0)
    model = SegFormer(4, embed_dims=8, num_heads=[1, 1, 2, 2], num_layers=[1, 1, 1, 1], channels=8).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        labels = model((images, torch.zeros(2, 48, 40, dtype=torch.long)), mode="predict")
        logits = torch.nn.functional.interpolate(model.predict_logits(images), size=(48, 40), mode="bilinear",
                                                 align_corners=False)
    assert labels.shape == (2, 48, 40) and torch.equal(labels, logits.argmax(1))
    loss = model.train()((images, torch.randint(0, 4, (2, 48, 40))), mode="loss")["loss_ce"]
    assert torch.isfinite(loss)


@pytest.mark.parametrize(("cfg", "message"), [
    ({"mode": "sliding"}, r"model.test_cfg.mode: must be whole or slide, got 'sliding'"),
    ({"mode": "slide", "stride": 8}, r"model.test_cfg.crop_size: slide mode needs a positive integer"),
    ({"mode": "slide", "crop_size": [32, 32], "stride": [0, 8]}, r"model.test_cfg.stride"),
    ({"mode": "whole", "crop": 3}, r"model.test_cfg.crop: not a test_cfg setting"),
    ("slide", r"model.test_cfg: must be a mapping"),
])
def test_bad_test_cfg(cfg, message):
    with pytest.raises(ValueError, match=message):
        _fcn(test_cfg=cfg)
