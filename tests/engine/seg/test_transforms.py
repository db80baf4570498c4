"""The pipeline transforms: MMSeg's sizes, crop retries, padding, colour distortion, normalisation, determinism."""

from __future__ import annotations

import pytest
import torch

from engine.errors import ConfigError
from engine.seg.transforms import Normalize, Pad, RandomCrop, RandomFlip, RandomResize, Resize, rescale_size
from engine.seg.transforms_color import PhotoMetricDistortion, hsv_to_rgb, rgb_to_hsv
from engine.seg.transforms_pipeline import Pipeline, item_generator, pipeline_problems


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), generator=gen(seed)).float()


# --- sizes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("w", "h", "scale", "want"), [
    (40, 30, (96, 48), (64, 48)),    # short edge bound: 48 / 30 = 1.6 < 96 / 40
    (30, 40, (96, 48), (48, 64)),    # portrait: the same rule by edge length, not by axis
    (100, 20, (96, 48), (96, 19)),   # long edge bound: 96 / 100 = 0.96; 19.2 rounds down
    (40, 30, (48, 96), (64, 48)),    # the order of scale does not matter with keep_ratio
])
def test_keep_ratio_fits_long_edge_in_max_and_short_edge_in_min(w, h, scale, want):
    assert rescale_size(w, h, scale, keep_ratio=True) == want
    assert rescale_size(w, h, scale, keep_ratio=False) == scale


def test_random_resize_draws_a_ratio_and_resizes_image_and_label_alike():
    t = RandomResize(scale=[96, 48], ratio_range=[0.5, 2.0], keep_ratio=True)
    label = torch.randint(0, 4, (30, 40), generator=gen())
    heights = set()
    for seed in range(30):
        out, out_label = t(image(30, 40), label, gen(seed))
        scale = t.sample_scale(gen(seed))  # (int(96 r), int(48 r)) for one r in [0.5, 2)
        assert 48 <= scale[0] < 192 and abs(scale[0] / 2 - scale[1]) <= 1
        w, h = rescale_size(40, 30, scale, True)
        assert out.shape == (3, h, w) and out_label.shape == (h, w)
        assert set(out_label.unique().tolist()) <= {0, 1, 2, 3}
        heights.add(h)
    assert len(heights) > 10
    fixed = RandomResize(scale=[96, 48], ratio_range=[1.0, 1.0], keep_ratio=False)
    assert fixed(image(30, 40), label, gen())[0].shape == (3, 48, 96)


def test_random_resize_between_two_scales_draws_each_edge_inclusively():
    t = RandomResize(scale=[[20, 10], [22, 12]], ratio_range=None, keep_ratio=False)
    sizes = {tuple(t(image(8, 8), None, gen(s))[0].shape[1:]) for s in range(200)}
    assert sizes == {(h, w) for h in (10, 11, 12) for w in (20, 21, 22)}


def test_resize_keeps_whole_pixel_values_and_nearest_labels():
    label = torch.tensor([[0, 1], [2, 3]])
    out, out_label = Resize(scale=[4, 4], keep_ratio=True)(image(2, 2), label, gen())
    assert out.shape == (3, 4, 4) and torch.equal(out, out.round()) and out.min() >= 0 and out.max() <= 255
    assert torch.equal(out_label, label.repeat_interleave(2, 0).repeat_interleave(2, 1))


# --- crop ----------------------------------------------------------------------------------------------------------

def windows(seed: int, height: int, width: int, crop: int, n: int) -> list[tuple[int, int]]:
    """The first `n` crop offsets a generator seeded `seed` gives (two integer draws each, rows first)."""
    g = gen(seed)
    return [(int(torch.randint(0, height - crop + 1, (), generator=g)),
             int(torch.randint(0, width - crop + 1, (), generator=g))) for _ in range(n)]


def dominated(crop: torch.Tensor, ratio: float) -> bool:
    values, counts = crop[crop != 255].unique(return_counts=True)
    return not (len(values) > 1 and counts.max() / counts.sum() < ratio)


def test_cat_max_ratio_redraws_crops_dominated_by_one_class_up_to_ten_times():
    label = torch.zeros(40, 40, dtype=torch.long)
    label[:12, :12] = 1           # one small object: most 10x10 windows hold background only
    label[30:, 30:] = 255         # ignored pixels do not count as a class
    t = RandomCrop(crop_size=[10, 10], cat_max_ratio=0.75)
    found = 0
    for seed in range(60):
        _, crop = t(image(40, 40), label, gen(seed))
        drawn = windows(seed, 40, 40, 10, 11)
        # MMSeg: the first acceptable window of the first ten, else the eleventh drawn.
        first = next((w for w in drawn[:10] if not dominated(label[w[0]:w[0] + 10, w[1]:w[1] + 10], 0.75)),
                     drawn[10])
        assert torch.equal(crop, label[first[0]:first[0] + 10, first[1]:first[1] + 10])
        found += not dominated(crop, 0.75)
    plain = sum(not dominated(RandomCrop([10, 10])(image(40, 40), label, gen(s))[1], 0.75) for s in range(60))
    assert found > 2 * plain


def test_crop_keeps_an_edge_shorter_than_the_crop_and_crops_image_with_label():
    img, label = image(20, 8), torch.arange(160).view(20, 8)
    out, out_label = RandomCrop(crop_size=[10, 10])(img, label, gen(3))
    assert out.shape == (3, 10, 8) and out_label.shape == (10, 8)
    rows = [r for r in range(11) if torch.equal(label[r:r + 10], out_label)]
    assert rows and torch.equal(img[:, rows[0]:rows[0] + 10], out)


# --- flip, pad, normalise ------------------------------------------------------------------------------------------

def test_flip_probability_and_direction():
    img, label = image(4, 6), torch.arange(24).view(4, 6)
    assert torch.equal(RandomFlip(prob=0.0)(img, label, gen())[1], label)
    out, out_label = RandomFlip(prob=1.0)(img, label, gen())
    assert torch.equal(out, img.flip(-1)) and torch.equal(out_label, label.flip(-1))
    assert torch.equal(RandomFlip(prob=1.0, direction="vertical")(img, label, gen())[1], label.flip(0))
    flips = sum(torch.equal(RandomFlip()(img, label, gen(s))[1], label.flip(-1)) for s in range(200))
    assert 70 < flips < 130


def test_pad_to_size_or_divisor_with_pad_values():
    img, label = image(13, 17), torch.ones(13, 17, dtype=torch.long)
    out, out_label = Pad(size_divisor=8)(img, label, gen())
    assert out.shape == (3, 16, 24) and out_label.shape == (16, 24)
    assert torch.equal(out[:, :13, :17], img) and (out[:, 13:] == 0).all() and (out[:, :, 17:] == 0).all()
    assert (out_label[:13, :17] == 1).all() and (out_label[13:] == 255).all() and (out_label[:, 17:] == 255).all()
    out, out_label = Pad(size=[20, 18], pad_val=7, seg_pad_val=9)(img, label, gen())
    assert out.shape == (3, 20, 18) and out[0, 19, 0] == 7 and out_label[19, 17] == 9
    assert Pad(size=[10, 10])(img, label, gen())[0].shape == (3, 13, 17)  # already larger: unchanged
    with pytest.raises(ValueError, match="exactly one of size and size_divisor"):
        Pad(size=[4, 4], size_divisor=4)


def test_normalize_values():
    img = torch.tensor([[[10.0]], [[20.0]], [[30.0]]])
    out, _ = Normalize(mean=[10, 10, 10], std=[1, 2, 4])(img, None, gen())
    assert out.flatten().tolist() == [0.0, 5.0, 5.0]
    out, _ = Normalize()(torch.full((3, 1, 1), 123.675), None, gen())
    assert abs(float(out[0])) < 1e-6


# --- colour --------------------------------------------------------------------------------------------------------

def test_hsv_follows_opencvs_8bit_scale():
    rgb = torch.tensor([[255.0, 0, 0, 255], [0, 255, 0, 255], [0, 0, 255, 255]]).view(3, 1, 4)
    hsv = rgb_to_hsv(rgb)
    assert hsv[0].flatten().tolist() == [0, 60, 120, 0] and hsv[1].flatten().tolist() == [255, 255, 255, 0]
    assert torch.equal(hsv_to_rgb(hsv), rgb)
    noisy = image(16, 16)
    assert (hsv_to_rgb(rgb_to_hsv(noisy)) - noisy).abs().max() <= 4  # H has 180 levels, as in OpenCV


def test_photometric_distortion_stays_in_range_is_deterministic_and_keeps_grey_grey():
    t = PhotoMetricDistortion()
    img = image(12, 12)
    outs = [t(img, None, gen(s))[0] for s in range(20)]
    for out in outs:
        assert out.shape == img.shape and out.min() >= 0 and out.max() <= 255 and torch.equal(out, out.round())
    assert torch.equal(outs[3], t(img, None, gen(3))[0])
    assert sum(not torch.equal(out, img) for out in outs) >= 15
    grey = torch.full((3, 4, 4), 100.0)
    for s in range(20):
        out = t(grey, None, gen(s))[0]
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # saturation and hue leave greys alone
    same = PhotoMetricDistortion(brightness_delta=0, contrast_range=[1, 1], saturation_range=[1, 1], hue_delta=0)
    assert all((same(img, None, gen(s))[0] - img).abs().max() <= 8 for s in range(10))


# --- pipelines -----------------------------------------------------------------------------------------------------

TRAIN = [{"type": "RandomResize", "scale": [96, 48], "ratio_range": [0.5, 2.0], "keep_ratio": True},
         {"type": "RandomCrop", "crop_size": [24, 24], "cat_max_ratio": 0.75},
         {"type": "RandomFlip", "prob": 0.5}, {"type": "PhotoMetricDistortion"},
         {"type": "Pad", "size": [24, 24]}]


def test_a_pipeline_is_a_function_of_seed_epoch_and_index():
    p = Pipeline(TRAIN, "data.dataset.pipeline")
    raw = torch.randint(0, 256, (20, 30, 3), dtype=torch.uint8)  # as stored: H x W x 3
    label = torch.randint(0, 3, (20, 30))
    a = p(raw, label, item_generator(7, 2, 5))
    b = p(raw.permute(2, 0, 1), label, item_generator(7, 2, 5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (3, 24, 24) and a[0].dtype == torch.float32 and a[1].dtype == torch.int64
    others = [p(raw, label, item_generator(*key)) for key in ((7, 3, 5), (7, 2, 6), (8, 2, 5))]
    assert all(not torch.equal(a[0], o[0]) for o in others)


def test_normalisation_is_implied_before_the_first_pad():
    p = Pipeline([{"type": "Pad", "size": [4, 4]}], "p", mean=[0, 0, 0], std=[2, 2, 2])
    out, label = p(torch.full((3, 2, 2), 10.0), torch.zeros(2, 2), gen())
    assert out[0, 0, 0] == 5 and out[0, 3, 3] == 0 and label[3, 3] == 255  # padded after normalising
    test = Pipeline([{"type": "Resize", "scale": [4, 4]}], "p", test=True)
    out, label = test(torch.zeros(3, 2, 2), torch.zeros(2, 2), gen())
    assert out.shape == (3, 4, 4) and label.shape == (2, 2)  # the test pipeline leaves the label as stored


def test_pipeline_problems_name_each_key_at_once():
    problems = pipeline_problems([{"type": "RandomCrp"}, {"type": "RandomCrop", "crop_size": [0, 4]},
                                  {"type": "Resize", "scale": 4, "keep_ration": True}, "x",
                                  {"type": "PhotoMetricDistortion", "hue_delta": "18"}], "data.dataset.pipeline")
    assert [p.split(":")[0] for p in problems] == [
        "data.dataset.pipeline.0.type", "data.dataset.pipeline.1.crop_size", "data.dataset.pipeline.2.keep_ration",
        "data.dataset.pipeline.3", "data.dataset.pipeline.4.hue_delta"]
    assert "did you mean 'RandomCrop'" in problems[0] and "did you mean 'keep_ratio'" in problems[2]
    assert pipeline_problems({"type": "RandomFlip"}, "p") == [
        "p: must be a list of transforms like [{type: RandomFlip, prob: 0.5}], got {'type': 'RandomFlip'}"]
    test = pipeline_problems([{"type": "RandomFlip"}, {"type": "Resize", "scale": [8, 8]}], "t", test=True)
    assert len(test) == 1 and test[0].startswith("t.0.type: RandomFlip is a training transform")
    late = pipeline_problems([{"type": "Normalize"}, {"type": "Pad", "size": 8}, {"type": "RandomFlip"}], "p")
    assert late == ["p.2.type: RandomFlip after Normalize (p.0); the transforms work on pixel values 0..255, so "
                    "only Pad may follow Normalize: move RandomFlip before it"]
    with pytest.raises(ConfigError) as info:
        Pipeline([{"type": "Pad"}], "data.dataset.pipeline")
    assert info.value.problems[0].startswith("data.dataset.pipeline.0: Pad refuses")
