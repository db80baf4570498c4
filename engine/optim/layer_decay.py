"""Layer-wise / stage-wise learning-rate decay: MMSeg's LearningRateDecayOptimizerConstructor for ViT and ConvNeXt.

``paramwise_cfg: {decay_rate, num_layers, decay_type: layer_wise|stage_wise}`` (``layer_wise_vit`` is accepted as
an alias of ``layer_wise``, as in MMSeg). Each trainable parameter gets a layer id from the backbone's table, and
its group the learning rate ``lr * decay_rate ** (num_layers + 1 - layer_id)``; anything outside the backbone
(decode head, neck) gets id ``num_layers + 1``, i.e. the base lr. Groups are named ``layer_{id}_{decay|no_decay}``
and carry ``lr``, ``lr_scale``, ``group_name``, ``param_names`` and, for no_decay groups, ``weight_decay=0``.
The default constructor's keys (``custom_keys``, ``*_mult``) do not apply here, as in MMSeg; frozen parameters are
left out.

Layer ids (``backbone.``-prefixed names, as MMSeg):

* ViT (MMSeg's BEiT/MAE rule): ``cls_token``/``mask_token``/``pos_embed``/``patch_embed.*`` -> 0,
  ``layers.i.*`` -> i + 1, everything else -> num_layers + 1.
* ConvNeXt ``layer_wise``: tokens -> 0; ``downsample_layers.s``: s0 -> 0, s1 -> 2, s2 -> 3, s3 -> num_layers;
  ``stages.s.b``: s0 -> 1, s1 -> 2, s2 -> 3 + b // 3, s3 -> num_layers; else num_layers + 1.
* ConvNeXt ``stage_wise``: tokens and ``downsample_layers`` -> 0, ``stages.s`` -> s + 1, else num_layers + 1.

Where we differ from MMSeg, on purpose:

* no weight decay for ``pos_embed`` and ``cls_token``. MMSeg *meant* to exempt them (``name in ('pos_embed',
  'cls_token')``) but compares those bare names with full names such as ``backbone.pos_embed``, so the test never
  matches and they are decayed there. We do what it intends: a parameter whose last name component is ``pos_embed``
  or ``cls_token`` is no_decay, as are 1-D parameters and names ending in ``.bias``.
* the backbone kind comes from a ``layer_decay_style`` attribute (``"vit"``/``"convnext"``) on ``model.backbone``,
  falling back to MMSeg's class-name test ('ConvNeXt'; 'BEiT'/'MAE', plus 'VisionTransformer'); an unknown backbone
  is a ParamGroupError (one line naming ``optim_wrapper.constructor``), not NotImplementedError.
* a layer id above ``num_layers + 1`` (``num_layers`` smaller than the backbone is deep, which MMSeg accepts and
  turns into learning-rate scales above 1) is a ParamGroupError.
* a backbone none of whose parameters gets a layer id from 0 to ``num_layers`` (a ``layer_decay_style`` backbone
  without ``layers``/``stages``/``patch_embed``, ...) is a ParamGroupError: every lr would be the base lr, and the
  constructor would do nothing while looking configured.
* without ``optim.weight_decay`` the decay groups carry no ``weight_decay`` key (the optimizer's default applies)
  instead of ``weight_decay=None``, which torch optimizers reject.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from engine.optim.param_groups_base import (
    DECAY_TYPES,
    DEFAULT_KEYS,
    LAYER_DECAY_CONSTRUCTOR,
    LAYER_DECAY_KEYS,
    OPTIM_PATH,
    ParamGroupError,
    ParamRule,
    constructor_path,
    key_path,
)
from engine.suggest import did_you_mean

# Where the build's own messages point (the check reports them as they are).
_CFG_PATH = "optim_wrapper.paramwise_cfg"
_CTOR_PATH = constructor_path(_CFG_PATH)
_TOKENS = ("backbone.cls_token", "backbone.mask_token", "backbone.pos_embed")
# Last name components exempt from weight decay: what MMSeg's ('pos_embed', 'cls_token') test was written for.
_NO_DECAY_NAMES = ("pos_embed", "cls_token")


def _index(name: str, position: int) -> int | None:
    """The integer at ``name.split('.')[position]``, or None when there is none."""
    parts = name.split(".")
    return int(parts[position]) if len(parts) > position and parts[position].isdigit() else None


def layer_id_for_vit(name: str, num_layers: int) -> int:
    """MMSeg's ``get_layer_id_for_vit`` (called there with ``num_layers + 2``), expressed with ``num_layers``."""
    if name in _TOKENS or name.startswith("backbone.patch_embed."):
        return 0
    layer = _index(name, 2)
    if name.startswith("backbone.layers.") and layer is not None:
        return layer + 1
    return num_layers + 1


def layer_id_for_convnext(name: str, num_layers: int) -> int:
    """MMSeg's ``get_layer_id_for_convnext`` (``decay_type: layer_wise``)."""
    if name in _TOKENS:
        return 0
    stage = _index(name, 2)
    if name.startswith("backbone.downsample_layers.") and stage is not None:
        return {0: 0, 1: 2, 2: 3}.get(stage, num_layers)
    if name.startswith("backbone.stages.") and stage is not None:
        block = _index(name, 3) or 0
        # Stage 2 holds most of ConvNeXt's blocks, so it is split into groups of three blocks.
        return {0: 1, 1: 2, 2: 3 + block // 3}.get(stage, num_layers)
    return num_layers + 1


def stage_id_for_convnext(name: str, num_layers: int) -> int:
    """MMSeg's ``get_stage_id_for_convnext`` (``decay_type: stage_wise``; called there with ``num_layers + 2``)."""
    if name in _TOKENS or name.startswith("backbone.downsample_layers."):
        return 0
    stage = _index(name, 2)
    if name.startswith("backbone.stages.") and stage is not None:
        return stage + 1
    return num_layers + 1


def backbone_style(model: nn.Module) -> str:
    """``"vit"`` or ``"convnext"``: which layer-id table applies to ``model.backbone``."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise ParamGroupError([
            f"{_CTOR_PATH}: {LAYER_DECAY_CONSTRUCTOR} needs a model with a `backbone` submodule; "
            f"{type(model).__name__} has none. Use a ViT- or ConvNeXt-style model (ViTSegmenter, ConvNeXtSegmenter) "
            "or remove the constructor"
        ])
    style = getattr(backbone, "layer_decay_style", None)
    if style in ("vit", "convnext"):
        return style
    cls_name = type(backbone).__name__
    if "ConvNeXt" in cls_name:
        return "convnext"
    if any(tag in cls_name for tag in ("BEiT", "MAE", "VisionTransformer")):
        return "vit"
    raise ParamGroupError([
        f"{_CTOR_PATH}: {LAYER_DECAY_CONSTRUCTOR} supports ViT- and ConvNeXt-style backbones only; model.backbone is "
        f"{cls_name}. Give the backbone class `layer_decay_style = 'vit'` or `'convnext'` (its parameter names must "
        "follow that layout) or remove the constructor"
    ])


def _layer_id_fn(style: str, decay_type: str) -> Callable[[str, int], int]:
    if decay_type == "stage_wise":
        if style != "convnext":
            raise ParamGroupError([
                f"{_CFG_PATH}.decay_type: 'stage_wise' needs a ConvNeXt-style backbone, this model's "
                "is ViT-style; use decay_type: layer_wise"
            ])
        return stage_id_for_convnext
    return layer_id_for_convnext if style == "convnext" else layer_id_for_vit


def _no_decay_reason(name: str, param: nn.Parameter) -> str | None:
    if param.ndim == 1:
        return "ndim==1"
    if name.endswith(".bias"):
        return "bias"
    if name.rsplit(".", 1)[-1] in _NO_DECAY_NAMES:
        return "pos_embed/cls_token"
    return None


def build_layer_decay_groups(
    model: nn.Module, optim_kwargs: dict[str, Any], paramwise_cfg: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[ParamRule]]:
    """Groups ``layer_{id}_{decay|no_decay}`` in first-appearance order, and one explanation row per parameter."""
    num_layers, rate = paramwise_cfg["num_layers"], paramwise_cfg["decay_rate"]
    decay_type = paramwise_cfg.get("decay_type", "layer_wise")
    layer_id = _layer_id_fn(backbone_style(model), decay_type)
    base_lr, base_wd = optim_kwargs["lr"], optim_kwargs.get("weight_decay")
    groups: dict[str, dict[str, Any]] = {}
    rules: list[ParamRule] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            rules.append(ParamRule(name, 0.0, None, "frozen (requires_grad=False): not optimized"))
            continue
        lid = layer_id(name, num_layers)
        if lid > num_layers + 1:
            raise ParamGroupError([
                f"{_CFG_PATH}.num_layers: {num_layers} is too small for this backbone: {name} gets "
                f"layer id {lid}, i.e. a learning-rate scale above 1; set num_layers >= {lid - 1}"
            ])
        reason = _no_decay_reason(name, param)
        group_name = f"layer_{lid}_{'decay' if reason is None else 'no_decay'}"
        group = groups.get(group_name)
        if group is None:
            scale = rate ** (num_layers + 1 - lid)
            group = {"lr": base_lr * scale, "lr_scale": scale, "group_name": group_name}
            if reason is not None:
                group["weight_decay"] = 0.0
            elif base_wd is not None:
                group["weight_decay"] = base_wd
            group.update(params=[], param_names=[])
            groups[group_name] = group
        group["params"].append(param)
        group["param_names"].append(name)
        rule = f"{decay_type} {group_name}" + (f" ({reason})" if reason else "")
        rules.append(ParamRule(name, group["lr"], group.get("weight_decay", base_wd), rule))
    if groups and all(group_name.startswith(f"layer_{num_layers + 1}_") for group_name in groups):
        backbone = type(model.backbone).__name__
        raise ParamGroupError([
            f"{_CTOR_PATH}: no parameter of model.backbone ({backbone}) is in a layer the "
            f"{decay_type} table knows (ViT: patch_embed, layers.<i>; ConvNeXt: downsample_layers, stages.<s>), so "
            "every learning rate would be the base lr; name the backbone's parameters that way or remove the "
            "constructor"
        ])
    return list(groups.values()), rules


def layer_decay_problems(cfg: dict[str, Any], optim_kwargs: dict[str, Any], path: str) -> list[str]:
    """Problems in a LearningRateDecayOptimizerConstructor ``paramwise_cfg`` (key path, bad value, what is allowed)."""
    problems: list[str] = []
    ctor = f"{LAYER_DECAY_CONSTRUCTOR} ({constructor_path(path)})"
    for key, value in cfg.items():
        if key in DEFAULT_KEYS:
            problems.append(
                f"{key_path(path, key)}: {key!r} is ignored with {ctor} (it replaces the default rules); remove it "
                f"or drop {constructor_path(path)}"
            )
        elif key not in LAYER_DECAY_KEYS:
            problems.append(
                f"{key_path(path, key)}: unknown key (value {value!r}); allowed with {ctor}: "
                f"{', '.join(LAYER_DECAY_KEYS)}" + did_you_mean(str(key), LAYER_DECAY_KEYS)
            )
    num_layers = cfg.get("num_layers")
    if "num_layers" not in cfg:
        problems.append(f"{path}.num_layers: required with {ctor}: the backbone depth, e.g. 12")
    elif isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
        problems.append(f"{path}.num_layers: must be an integer >= 1, got {num_layers!r}")
    rate = cfg.get("decay_rate")
    if "decay_rate" not in cfg:
        problems.append(f"{path}.decay_rate: required with {ctor}: a number in (0, 1], e.g. 0.9")
    elif isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        problems.append(f"{path}.decay_rate: must be a number in (0, 1], got {rate!r}")
    decay_type = cfg.get("decay_type", "layer_wise")
    if decay_type not in DECAY_TYPES:
        problems.append(
            f"{path}.decay_type: must be one of {', '.join(DECAY_TYPES)}, got {decay_type!r}"
            + did_you_mean(str(decay_type), DECAY_TYPES)
        )
    if optim_kwargs.get("lr") is None:
        problems.append(f"{OPTIM_PATH}.lr: required with {ctor}: the base learning rate that the decay scales")
    return problems
