"""`model.init_cfg: {type: Pretrained, checkpoint, prefix}` / `model.pretrained`: backbone weights from a local
safetensors file, and `trainline check` refusing what the build would refuse (missing file, keys, shapes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engine.build import build_model
from engine.config.validate import check_params
from engine.errors import ConfigError
from engine.seg.models.segformer import SegFormer
from tests.conftest import apply_overrides, shipped_params

SMALL = {"embed_dims": 8, "num_heads": [1, 1, 2, 2], "num_layers": [1, 1, 1, 1], "channels": 8}


def _source(seed: int = 3) -> SegFormer:
    torch.manual_seed(seed)
    return SegFormer(4, **SMALL)


def _whole_model_file(tmp_path: Path) -> tuple[Path, SegFormer]:
    """A segmentor checkpoint (backbone.* and decode_head.* keys), as MMSeg's pretrained models are."""
    source = _source()
    path = tmp_path / "segformer.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    return path, source


def _params(model: dict) -> dict:
    return apply_overrides(shipped_params(), {"model": {"_delete_": True, "type": "SegFormer", **SMALL, **model}})


def test_backbone_loads_with_prefix(tmp_path: Path):
    path, source = _whole_model_file(tmp_path)
    torch.manual_seed(0)
    model = SegFormer(4, **SMALL, init_cfg={"type": "Pretrained", "checkpoint": str(path), "prefix": "backbone."})
    for key, value in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    # only the backbone: the decode head keeps its own initialisation
    assert not torch.equal(model.decode_head.conv_seg.weight, source.decode_head.conv_seg.weight)


def test_backbone_only_file_and_pretrained_shorthand(tmp_path: Path):
    source = _source()
    path = tmp_path / "mit.safetensors"
    # an ImageNet-style backbone file: its keys have no prefix, and a classifier the backbone does not have
    save_file({**{k: v.contiguous() for k, v in source.backbone.state_dict().items()}, "head.weight": torch.ones(2)},
              str(path))
    model = SegFormer(4, **SMALL, pretrained=str(path))
    assert torch.equal(model.backbone.layers[0][0].projection.weight, source.backbone.layers[0][0].projection.weight)


def test_build_and_check_agree_on_a_good_file(tmp_path: Path):
    path, source = _whole_model_file(tmp_path)
    cfg, _ = check_params(_params({"init_cfg": {"type": "Pretrained", "checkpoint": str(path),
                                                "prefix": "backbone."}}), data=False)
    model = build_model(cfg)
    assert torch.equal(model.backbone.layers[3][2].weight, source.backbone.layers[3][2].weight)


def _refused(model: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        check_params(_params(model), data=False)
    with pytest.raises(ConfigError) as built:
        build_model(_params(model))
    # the same refusal (the build's `got` list also shows the num_classes it offers)
    assert str(built.value).split("; got ")[0] == str(caught.value).split("; got ")[0]
    return str(caught.value)


def test_missing_file_is_refused_by_check(tmp_path: Path):
    message = _refused({"init_cfg": {"type": "Pretrained", "checkpoint": str(tmp_path / "no.safetensors")}})
    assert "model.init_cfg.checkpoint: " in message and "no.safetensors not found" in message


def test_mismatched_shapes_and_keys_are_refused_by_check(tmp_path: Path):
    path, _ = _whole_model_file(tmp_path)
    shaped = _refused({"embed_dims": 16, "init_cfg": {"type": "Pretrained", "checkpoint": str(path),
                                                      "prefix": "backbone."}})
    assert "model.init_cfg.checkpoint: " in shaped and "does not fit the backbone" in shaped
    assert "mis-shaped" in shaped and "(e.g. layers.0.0.norm.bias: saved 8, model 16)" in shaped
    no_prefix = _refused({"init_cfg": {"type": "Pretrained", "checkpoint": str(path)}})
    assert "missing" in no_prefix and "layers.0.0.norm.bias" in no_prefix
    wrong_prefix = _refused({"init_cfg": {"type": "Pretrained", "checkpoint": str(path), "prefix": "encoder."}})
    assert "has no tensor whose name starts with prefix 'encoder.'" in wrong_prefix


@pytest.mark.parametrize(("model", "message"), [
    ({"init_cfg": {"type": "Kaiming"}}, "model.init_cfg: must be {type: Pretrained"),
    ({"init_cfg": {"type": "Pretrained", "checkpoint": "w.pth"}}, "model.init_cfg.checkpoint: w.pth is not a "
                                                                  ".safetensors file"),
    ({"init_cfg": {"type": "Pretrained", "checkpoint": "w.safetensors", "map_location": "cpu"}},
     "model.init_cfg.map_location: not a Pretrained setting"),
    ({"pretrained": "a.safetensors", "init_cfg": {"type": "Pretrained", "checkpoint": "a.safetensors"}},
     "model.pretrained: set either pretrained or init_cfg, not both"),
])
def test_bad_init_cfg(model, message):
    assert message in _refused(model)


def test_unreadable_file(tmp_path: Path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    assert "is not a readable safetensors file" in _refused({"pretrained": str(path)})
