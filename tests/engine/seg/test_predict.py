"""Prediction on new images: window placement, slide vs whole, bad inputs one line each, the PNGs written, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from engine.cli import main
from engine.seg.inference import slide_logits, whole_logits, windows
from engine.seg.models import UNet
from engine.seg.predict import BadInput, output_names, predict, read_image

NUM_CLASSES = 4
TINY = {"model": {"type": "UNet", "base_channels": 4, "num_stages": 2}}


def tiny_unet(seed: int = 0, base_channels: int = 4) -> UNet:
    torch.manual_seed(seed)
    return UNet(NUM_CLASSES, base_channels=base_channels, num_stages=2).eval()


def save_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# -- windows ------------------------------------------------------------------------------------------------------


def test_windows_cover_the_image_and_end_at_its_edge():
    boxes = windows(100, 70, (48, 48), (32, 32))
    assert [(y1, y2) for y1, y2, _, _ in boxes[::2]] == [(0, 48), (32, 80), (52, 100)]  # last one shifted back
    assert sorted({(x1, x2) for _, _, x1, x2 in boxes}) == [(0, 48), (22, 70)]
    seen = np.zeros((100, 70), dtype=int)
    for y1, y2, x1, x2 in boxes:
        assert (y2 - y1, x2 - x1) == (48, 48)
        seen[y1:y2, x1:x2] += 1
    assert seen.min() >= 1


def test_a_crop_covering_the_image_is_one_window_of_the_image():
    assert windows(30, 20, (48, 48), (32, 32)) == [(0, 30, 0, 20)]


def test_overlapping_logits_are_averaged():
    """A per-pixel model gives the same logits whatever window saw the pixel, so the average equals whole."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, NUM_CLASSES, 1)
    image = torch.randn(3, 70, 53)
    slid = slide_logits(conv, image, (32, 24), (20, 10), batch_size=3)
    assert slid.shape == (NUM_CLASSES, 70, 53)
    torch.testing.assert_close(slid, whole_logits(conv, image))


def test_slide_equals_whole_when_the_crop_covers_the_image():
    model = tiny_unet()
    image = torch.randn(3, 40, 36)
    whole = whole_logits(model.predict_logits, image)
    for crop in [(40, 36), (64, 64)]:
        torch.testing.assert_close(slide_logits(model.predict_logits, image, crop, (8, 8)), whole)


# -- inputs ---------------------------------------------------------------------------------------------------------


def test_convertible_images_become_rgb(tmp_path):
    grey = save_png(tmp_path / "grey.png", np.full((5, 6), 7, dtype=np.uint8))
    rgba = save_png(tmp_path / "rgba.png", np.full((5, 6, 4), 9, dtype=np.uint8))
    Image.fromarray(rgb(5, 6)).save(tmp_path / "photo.jpg")
    for path in (grey, rgba, tmp_path / "photo.jpg"):
        array = read_image(path)
        assert array.shape == (5, 6, 3) and array.dtype == np.uint8
    assert read_image(grey)[0, 0].tolist() == [7, 7, 7]


@pytest.mark.parametrize("name, write, message", [
    ("text.png", lambda p: p.write_text("not an image"), "not an image"),
    ("deep.png", lambda p: Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16)).save(p), "1-channel 16-bit"),
    ("greyalpha.png", lambda p: Image.new("LA", (4, 4)).save(p), "2-channel"),
    ("cut.png", lambda p: p.write_bytes(_png_bytes(rgb(32, 32))[:200]), "cannot be read"),
])
def test_bad_inputs_say_what_is_wrong(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(BadInput, match=message):
        read_image(path)


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_output_names_never_collide():
    names = output_names([Path("a.png"), Path("a.jpg"), Path("b_color.png"), Path("b.png")])
    assert names[Path("a.png")] == "a" and names[Path("a.jpg")] == "a_jpg"
    files = [f"{n}{s}.png" for n in names.values() for s in ("", "_color", "_overlay")]
    assert len(files) == len(set(files))


# -- outputs --------------------------------------------------------------------------------------------------------


def predict_cfg() -> dict:
    return {"model": {"type": "UNet"}, "prepare": {"image_size": 16},
            "data": {"root": "nowhere", "dataset": {"type": "SegDataset"}}}


def test_predict_writes_three_decodable_pngs_per_image(tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    save_png(images / "small.png", rgb(12, 14))
    save_png(images / "large.png", rgb(40, 23, seed=1))
    (images / "notes.txt").write_text("ignored: not an image suffix")
    (images / "broken.png").write_text("no")
    out = tmp_path / "out"
    done, problems = predict(tiny_unet(), predict_cfg(), images, out, {"mode": "auto"})
    assert problems == [f"{images / 'broken.png'}: not an image Pillow can read (PNG, JPEG, BMP, TIFF, WebP)"]
    assert len(done) == 2 and "slide 16x16 stride 10x10" in done[0] and "whole" in done[1]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}{s}.png" for n in ("large", "small") for s in ("", "_color", "_overlay"))
    for name, size in (("small", (12, 14)), ("large", (40, 23))):
        with Image.open(out / f"{name}.png") as mask:
            assert mask.mode == "P" and mask.size == size[::-1]
            assert np.asarray(mask).max() < NUM_CLASSES
        for suffix in ("_color", "_overlay"):
            with Image.open(out / f"{name}{suffix}.png") as picture:
                assert picture.mode == "RGB" and picture.size == size[::-1]


def test_predict_labels_match_the_model(tmp_path):
    model = tiny_unet()
    image = rgb(16, 16)
    path = save_png(tmp_path / "x.png", image)
    predict(model, predict_cfg(), path, tmp_path / "out", {"mode": "whole"})
    mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
    normalised = (torch.from_numpy(image).permute(2, 0, 1).float() - mean) / std
    with torch.no_grad():
        expected = model((normalised[None], None), mode="predict")[0].numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "x.png")), expected)


# -- the command ----------------------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path, write_params, monkeypatch):
    """A params file for a tiny UNet, its random weights saved as the engine saves them, and a folder of images."""
    from safetensors.torch import save_file

    from engine.checkpoint import safetensors_weights

    monkeypatch.chdir(tmp_path)
    write_params(TINY)
    Path("models").mkdir()
    save_file(safetensors_weights(tiny_unet().state_dict()), "models/model.safetensors")
    Path("images").mkdir()
    save_png(Path("images/a.png"), rgb(20, 30))
    save_png(Path("images/b.png"), rgb(64, 50, seed=2))
    Path("images/c.png").write_text("not a picture")
    return tmp_path


def invoke(*args: str):
    return CliRunner().invoke(main, ["predict", *args])


def test_cli_predicts_and_names_each_bad_input(project):
    result = invoke("--input", "images", "--out", "pred")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["error: images/c.png: not an image Pillow can read (PNG, JPEG, BMP, TIFF, "
                                          "WebP)"]
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["images/a.png", "images/b.png"]
    assert len(list(Path("pred").glob("*.png"))) == 6 and not list(Path("pred").glob(".*"))


def test_cli_one_file_exit_zero(project):
    result = invoke("--input", "images/a.png", "--out", "pred", "--mode", "slide", "--crop-size", "16", "16",
                    "--stride", "8", "8")
    assert result.exit_code == 0, result.output
    assert "slide 16x16 stride 8x8" in result.stdout
    assert np.asarray(Image.open("pred/a.png")).shape == (20, 30)


def test_cli_weights_that_do_not_fit_the_params(project):
    from safetensors.torch import save_file

    from engine.checkpoint import safetensors_weights

    save_file(safetensors_weights(tiny_unet(base_channels=8).state_dict()), "models/other.safetensors")
    result = invoke("--input", "images", "--out", "pred", "--weights", "models/other.safetensors")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: models/other.safetensors: the weights do not fit the model (mis-shaped")
    assert "--params" in line and not Path("pred").exists()


@pytest.mark.parametrize("args, message", [
    (["--weights", "nothing.safetensors"], "error: --weights: nothing.safetensors not found"),
    (["--weights", "images/c.png"], "error: --weights: images/c.png is not a readable safetensors file"),
    (["--input", "missing"], "error: --input: missing not found"),
    (["--out", "images"], "error: --out: images is the input directory"),
    (["--input", "images/a.png", "--out", "images"], "error: --out: images is the input directory"),
])
def test_cli_bad_arguments_one_line(project, args, message):
    options = {"--input": "images", "--out": "pred"}
    for key, value in zip(args[::2], args[1::2], strict=True):
        options[key] = value
    result = invoke(*[x for kv in options.items() for x in kv])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(message), line


def test_auto_follows_the_params_test_cfg(tmp_path):
    """With `model.test_cfg` in the params, `auto` infers as the eval stage scored: its mode, crop and stride."""
    images = tmp_path / "in"
    images.mkdir()
    save_png(images / "small.png", rgb(12, 14))
    cfg = predict_cfg()
    cfg["model"]["test_cfg"] = {"mode": "slide", "crop_size": [8, 8], "stride": [6, 6]}
    done, _ = predict(tiny_unet(), cfg, images, tmp_path / "out", {"mode": "auto"})
    assert "slide 8x8 stride 6x6" in done[0]
    cfg["model"]["test_cfg"] = {"mode": "whole"}
    done, _ = predict(tiny_unet(), cfg, images, tmp_path / "out2", {"mode": "auto", "crop_size": (4, 4)})
    assert "whole" in done[0]
    done, _ = predict(tiny_unet(), cfg, images, tmp_path / "out3", {"mode": "slide", "crop_size": (8, 8),
                                                                    "stride": (4, 4)})
    assert "slide 8x8 stride 4x4" in done[0]
