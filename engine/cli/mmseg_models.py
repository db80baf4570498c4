"""Map MMSeg's `model=dict(type='EncoderDecoder', backbone=..., decode_head=...)` to a model of the example.

A model maps only when its backbone has a counterpart here *and* its decode head is the head that model has:
UNet + FCNHead -> `UNet`, VisionTransformer + FCNHead -> `ViTSegmenter`, ConvNeXt + UPerHead -> `ConvNeXtSegmenter`
(its head is a lighter pyramid fusion of the same stages), MixVisionTransformer + SegformerHead -> `SegFormer`.
Backbone arguments our model takes are carried over, `decode_head.num_classes` / `ignore_index` become the model's;
`test_cfg` (whole / slide), an FCNHead `auxiliary_head` on a ConvNeXt or MiT stage, and `pretrained` / the
backbone's `init_cfg` naming a local .safetensors file map too. Every other argument is listed with the reason,
so it is clear what the imported model leaves out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_SCOPES = ("mmseg.", "mmengine.", "mmpretrain.", "mmcls.")

# backbone type -> (our model, its decode head in MMSeg terms, backbone argument -> our argument)
_MODELS: dict[str, tuple[str, str, dict[str, str]]] = {
    "UNet": ("UNet", "FCNHead", {"in_channels": "in_channels", "base_channels": "base_channels",
                                 "num_stages": "num_stages"}),
    "VisionTransformer": ("ViTSegmenter", "FCNHead", {
        "img_size": "img_size", "patch_size": "patch_size", "in_channels": "in_channels",
        "embed_dims": "embed_dims", "num_layers": "num_layers", "num_heads": "num_heads", "mlp_ratio": "mlp_ratio"}),
    "ConvNeXt": ("ConvNeXtSegmenter", "UPerHead", {"in_channels": "in_channels", "stem_patch_size": "stem_patch_size",
                                                   "layer_scale_init_value": "layer_scale_init_value"}),
    "MixVisionTransformer": ("SegFormer", "SegformerHead", {k: k for k in (
        "in_channels", "embed_dims", "num_stages", "num_layers", "num_heads", "patch_sizes", "strides", "sr_ratios",
        "mlp_ratio", "qkv_bias", "drop_rate", "attn_drop_rate", "drop_path_rate")}),
}
# Head arguments that are arguments of our model too (SegFormer's head width and dropout).
_HEAD_ARGS = {"SegFormer": {"channels": "channels", "dropout_ratio": "dropout_ratio"}}
# Backbones whose feature list is indexed as MMSeg's (stage i = in_index i), so an auxiliary head's in_index keeps
# its meaning; MMSeg's ViT / UNet index out_indices / decoder outputs, which are not our models' feature lists.
_AUX_BACKBONES = ("ConvNeXt", "MixVisionTransformer")
_AUX_KEYS = ("in_index", "channels", "num_convs", "kernel_size", "dilation", "concat_input", "dropout_ratio")
# mmpretrain's ConvNeXt `arch` names: (depths, channels)
_CONVNEXT_ARCHS = {
    "atto": ([2, 2, 6, 2], [40, 80, 160, 320]), "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
    "pico": ([2, 2, 6, 2], [64, 128, 256, 512]), "nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
    "tiny": ([3, 3, 9, 3], [96, 192, 384, 768]), "small": ([3, 3, 27, 3], [96, 192, 384, 768]),
    "base": ([3, 3, 27, 3], [128, 256, 512, 1024]), "large": ([3, 3, 27, 3], [192, 384, 768, 1536]),
    "xlarge": ([3, 3, 27, 3], [256, 512, 1024, 2048]),
}
_LOSS_OK = {"type": "CrossEntropyLoss", "use_sigmoid": False, "loss_weight": 1.0}


def short_type(name: Any) -> Any:
    """`mmseg.UNet` -> `UNet`: scopes select a registry in MMEngine; here names are global."""
    if isinstance(name, str):
        for scope in _SCOPES:
            if name.startswith(scope):
                return name[len(scope):]
    return name


def map_model(model: Any, skip: Callable[[str, str], None]) -> dict[str, Any] | None:
    """The params.yaml `model` for MMSeg's `model`, or None; `skip(key, reason)` is told each key left out."""
    if model is None:
        return None
    kind = short_type(model.get("type")) if isinstance(model, dict) else None
    if kind != "EncoderDecoder":
        skip("model", f"model type {kind!r}: only EncoderDecoder models map to the example's models")
        return None
    backbone, head = model.get("backbone") or {}, model.get("decode_head") or {}
    bb_type = short_type(backbone.get("type")) if isinstance(backbone, dict) else None
    head_type = short_type(head.get("type")) if isinstance(head, dict) else None
    if bb_type not in _MODELS:
        skip("model", f"backbone {bb_type!r} has no counterpart here; the example's models are UNet, FCN (a "
                      f"small dilated conv net, no ResNet), ViTSegmenter, ConvNeXtSegmenter: pick one by hand")
        return None
    ours, want_head, renames = _MODELS[bb_type]
    if head_type != want_head:
        skip("model", f"{bb_type} with {head_type!r}: the example's {ours} has the head of an MMSeg "
                      f"{want_head}, so the model would not be the same; pick it by hand")
        return None
    mapped: dict[str, Any] = {"type": ours}
    for key, value in backbone.items():
        if key == "type":
            continue
        if bb_type == "ConvNeXt" and key == "arch" and _convnext_arch(value, mapped):
            continue
        if bb_type == "MixVisionTransformer" and key == "out_indices" and list(value) == [0, 1, 2, 3]:
            continue  # every stage feeds the head, as here
        if key == "init_cfg":
            _pretrained(value, "model.backbone.init_cfg", mapped, skip)
            continue
        if key in renames:
            mapped[renames[key]] = value
        else:
            skip(f"model.backbone.{key}", f"{ours} here has no such argument")
    if isinstance(mapped.get("img_size"), list) and len(set(mapped["img_size"])) == 1:
        mapped["img_size"] = mapped["img_size"][0]  # square images: our ViT takes one side
    for key, value in head.items():
        if key in ("num_classes", "ignore_index"):
            mapped[key] = value
        elif key in _HEAD_ARGS.get(ours, {}):
            mapped[_HEAD_ARGS[ours][key]] = value
        elif key == "interpolate_mode" and value == "bilinear":
            continue  # what SegformerHead here does
        elif key == "loss_decode" and _plain_ce(value):
            continue  # cross entropy with weight 1: what the models here compute
        elif key not in ("type", "in_channels", "in_index", "channels", "align_corners", "norm_cfg"):
            skip(f"model.decode_head.{key}", f"the head of {ours} here has no such argument")
        elif key != "type":
            skip(f"model.decode_head.{key}", f"fixed by {ours}'s own head here")
    for key in model:
        if key in ("type", "backbone", "decode_head"):
            continue
        if key == "test_cfg" and _test_cfg(model[key], mapped, skip):
            continue
        if key == "auxiliary_head" and bb_type in _AUX_BACKBONES and _aux_head(model[key], mapped, skip):
            continue
        if key == "pretrained" and model[key] is None:
            continue
        if key == "pretrained":
            _pretrained({"type": "Pretrained", "checkpoint": model[key]}, "model.pretrained", mapped, skip)
            continue
        reasons = {"data_preprocessor": "normalisation is the dataset's (data.dataset mean/std), padding is not done",
                   "auxiliary_head": f"only one FCNHead on a ConvNeXt or MiT stage maps (the stage indices of "
                                     f"{bb_type} differ here)",
                   "init_cfg": "only the backbone's init_cfg maps here (as model.init_cfg)",
                   "test_cfg": "only mode whole, or slide with crop_size and stride, maps"}
        skip(f"model.{key}", reasons.get(key, f"{ours} here has no such setting"))
    return mapped


def _test_cfg(value: Any, mapped: dict[str, Any], skip: Callable[[str, str], None]) -> bool:
    if not isinstance(value, dict) or value.get("mode", "whole") not in ("whole", "slide"):
        return False
    if value.get("mode", "whole") == "whole":
        extra = set(value) - {"mode"}
        for key in sorted(extra):
            skip(f"model.test_cfg.{key}", "whole-image inference here takes no other setting")
        return True
    if not {"crop_size", "stride"} <= set(value):
        return False
    mapped["test_cfg"] = {"mode": "slide", "crop_size": list(value["crop_size"]), "stride": list(value["stride"])}
    for key in sorted(set(value) - {"mode", "crop_size", "stride"}):
        skip(f"model.test_cfg.{key}", "sliding-window inference here takes mode, crop_size and stride")
    return True


def _aux_head(value: Any, mapped: dict[str, Any], skip: Callable[[str, str], None]) -> bool:
    if not isinstance(value, dict) or short_type(value.get("type")) != "FCNHead":
        return False  # a list of heads or another head type
    aux: dict[str, Any] = {k: value[k] for k in _AUX_KEYS if k in value}
    loss = value.get("loss_decode")
    if isinstance(loss, dict) and _plain_ce({**loss, "loss_weight": 1.0}):
        aux["loss_weight"] = loss.get("loss_weight", 1.0)
    elif loss is not None:
        skip("model.auxiliary_head.loss_decode", "the auxiliary head here computes cross entropy only")
    for key in sorted(set(value) - set(_AUX_KEYS) - {"type", "loss_decode", "num_classes"}):
        if key not in ("in_channels", "norm_cfg", "align_corners"):
            skip(f"model.auxiliary_head.{key}", "the auxiliary FCNHead here has no such argument")
    mapped["auxiliary_head"] = aux
    return True


def _pretrained(value: Any, where: str, mapped: dict[str, Any], skip: Callable[[str, str], None]) -> None:
    checkpoint = value.get("checkpoint") if isinstance(value, dict) else None
    if (isinstance(value, dict) and value.get("type") == "Pretrained" and isinstance(checkpoint, str)
            and checkpoint.endswith(".safetensors") and "://" not in checkpoint):
        mapped["init_cfg"] = {k: v for k, v in value.items() if k in ("type", "checkpoint", "prefix")}
        return
    skip(where, "pretrained weights load from a local .safetensors file here: convert the checkpoint "
                "(safetensors.torch.save_file) and set model.init_cfg: {type: Pretrained, checkpoint: FILE}")


def _convnext_arch(value: Any, mapped: dict[str, Any]) -> bool:
    if isinstance(value, str) and value in _CONVNEXT_ARCHS:
        depths, dims = _CONVNEXT_ARCHS[value]
    elif isinstance(value, dict) and set(value) == {"depths", "channels"}:
        depths, dims = value["depths"], value["channels"]
    else:
        return False
    mapped["depths"], mapped["dims"] = list(depths), list(dims)
    return True


def _plain_ce(loss: Any) -> bool:
    if not isinstance(loss, dict) or loss.get("type") not in ("CrossEntropyLoss", "mmseg.CrossEntropyLoss"):
        return False
    return all(loss.get(k, v) == v for k, v in _LOSS_OK.items() if k != "type") and set(loss) <= set(_LOSS_OK)
