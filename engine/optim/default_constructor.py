"""Optimizer param groups from ``optim_wrapper.paramwise_cfg`` with MMEngine's DefaultOptimWrapperConstructor rules.

Per parameter, the learning rate and weight decay are exactly MMEngine's (``mmengine/optim/optimizer/
default_constructor.py``):

* ``custom_keys``: keys are tried longest first, ties alphabetically; the first key that is a substring of
  ``f"{prefix}.{name}"`` wins. Top-level parameters are therefore seen as ``".weight"`` (leading dot), so a key like
  ``".weight"`` matches only them. ``lr = lr * lr_mult``, ``weight_decay = weight_decay * decay_mult`` (only when
  ``optim.weight_decay`` is set), then every item of the entry is copied into the group (``lr_mult``/``decay_mult``
  included, and any optimizer argument such as ``betas``). A match skips every rule below.
* ``bias_lr_mult``: parameters named ``bias`` outside norm layers.
* weight decay, first rule that applies and is configured: ``norm_decay_mult`` (BatchNorm/InstanceNorm/GroupNorm/
  LayerNorm and subclasses) -> ``bias_decay_mult`` -> ``dwconv_decay_mult`` (Conv2d with ``in_channels == groups``)
  -> ``flat_decay_mult`` (1-D parameters).
* frozen parameters (``requires_grad=False``) are left out; ``bypass_duplicate`` skips a tensor seen before.

Where we differ, on purpose:

* MMEngine makes one group per parameter; parameters whose settings are identical share one group here (first
  appearance order). Every group also carries ``param_names`` (a key torch itself understands).
* ``torch.nn.RMSNorm`` counts as a norm layer for ``norm_decay_mult`` (MMEngine's class list predates it).
* A tensor reached twice without ``bypass_duplicate`` is a ParamGroupError naming both paths; with merged groups torch
  would only warn, and the tensor would be stepped twice.
* Deformable-conv rules (``dcn_offset_lr_mult``) are not supported: no bundled model has mmcv DCN layers.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

from engine.optim.param_groups_base import (
    DEFAULT_CONSTRUCTOR,
    DEFAULT_KEYS,
    GROUP_DATA_KEYS,
    LAYER_DECAY_CONSTRUCTOR,
    LAYER_DECAY_KEYS,
    OPTIM_PATH,
    WD_MULT_KEYS,
    ParamGroupError,
    ParamRule,
    constructor_path,
    is_mult,
    key_path,
    walk,
)
from engine.suggest import did_you_mean

NORM_TYPES = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm, nn.RMSNorm)


def build_default_groups(
    model: nn.Module, optim_kwargs: dict[str, Any], paramwise_cfg: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], list[ParamRule]]:
    """Groups and explanation rows for a checked ``paramwise_cfg``; none (None or empty) gives one group of all."""
    if not paramwise_cfg:
        return _single_group(model, optim_kwargs)
    return _paramwise_groups(model, optim_kwargs, paramwise_cfg)


def default_problems(cfg: dict[str, Any], optim_kwargs: dict[str, Any], path: str) -> list[str]:
    """Problems in a DefaultOptimWrapperConstructor ``paramwise_cfg`` (key path, bad value, what is allowed)."""
    problems = _default_key_problems(cfg, optim_kwargs, path)
    if cfg and optim_kwargs.get("lr") is None:
        problems.append(f"{OPTIM_PATH}.lr: required when {path} is set: the base learning rate the multipliers scale")
    return problems


def _single_group(model: nn.Module, optim_kwargs: dict[str, Any]) -> tuple[list[dict[str, Any]], list[ParamRule]]:
    named = list(model.named_parameters())
    group = {"params": [p for _, p in named], "param_names": [n for n, _ in named]}
    lr, wd = optim_kwargs.get("lr"), optim_kwargs.get("weight_decay")
    return [group], [ParamRule(name, lr, wd, "default") for name, _ in named]


def _paramwise_groups(
    model: nn.Module, optim_kwargs: dict[str, Any], cfg: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[ParamRule]]:
    base_lr, base_wd = optim_kwargs.get("lr"), optim_kwargs.get("weight_decay")
    custom_keys = cfg.get("custom_keys") or {}
    sorted_keys = sorted(sorted(custom_keys), key=len, reverse=True)  # longest first, ties alphabetical
    groups: dict[str, dict[str, Any]] = {}
    rules: list[ParamRule] = []
    seen: dict[int, ParamRule] = {}  # id(tensor) -> row of the first name it was grouped under
    for module, prefix, name, param in walk(model):
        full_name = f"{prefix}.{name}" if prefix else name
        first = seen.get(id(param))
        if first is not None:
            if not cfg.get("bypass_duplicate", False):
                raise ParamGroupError([
                    f"optim_wrapper.paramwise_cfg.bypass_duplicate: parameter {full_name!r} is the same tensor as "
                    f"{first.name!r} (tied weights); set optim_wrapper.paramwise_cfg.bypass_duplicate: true to "
                    "optimize it once"
                ])
            rules.append(ParamRule(full_name, first.lr, first.weight_decay, f"bypass_duplicate (same as {first.name})"))
            continue
        if not param.requires_grad:
            rules.append(ParamRule(full_name, 0.0, None, "frozen (requires_grad=False): not optimized"))
            continue
        # MMEngine matches custom keys against f"{prefix}.{name}", hence ".weight" for top-level parameters.
        # paramwise_problems requires optim.lr whenever rules are set, so base_lr is a number here
        settings, rule = _settings_for(module, name, param, f"{prefix}.{name}", cfg, sorted_keys,
                                       base_lr, base_wd)  # type: ignore[arg-type]
        key = repr(sorted(settings.items()))
        group = groups.setdefault(key, {**settings, "params": [], "param_names": []})
        group["params"].append(param)
        group["param_names"].append(full_name)
        row = ParamRule(full_name, settings.get("lr", base_lr), settings.get("weight_decay", base_wd), rule)
        seen[id(param)] = row
        rules.append(row)
    return list(groups.values()), rules


def _settings_for(
    module: nn.Module,
    name: str,
    param: nn.Parameter,
    match_name: str,
    cfg: dict[str, Any],
    sorted_keys: list[str],
    base_lr: float,
    base_wd: float | None,
) -> tuple[dict[str, Any], str]:
    """The group settings MMEngine would give this parameter, and the rule(s) that produced them."""
    custom_keys = cfg.get("custom_keys") or {}
    for key in sorted_keys:
        if key in match_name:
            entry = custom_keys[key]
            settings: dict[str, Any] = {"lr": base_lr * entry.get("lr_mult", 1.0)}
            if base_wd is not None:
                settings["weight_decay"] = base_wd * entry.get("decay_mult", 1.0)
            settings.update(entry)  # MMEngine copies the whole entry, so it may override lr or any optimizer arg
            return settings, f"custom_keys[{key!r}]"
    settings, applied = {}, []
    is_norm = isinstance(module, NORM_TYPES)
    if name == "bias" and not is_norm and cfg.get("bias_lr_mult") is not None:
        settings["lr"] = base_lr * cfg["bias_lr_mult"]
        applied.append("bias_lr_mult")
    if base_wd is not None:
        decay_key = _decay_rule(module, name, param, cfg, is_norm)
        if decay_key is not None:
            settings["weight_decay"] = base_wd * cfg[decay_key]
            applied.append(decay_key)
    return settings, "+".join(applied) or "default"


def _decay_rule(module: nn.Module, name: str, param: nn.Parameter, cfg: dict[str, Any], is_norm: bool) -> str | None:
    """First configured weight-decay rule that applies, in MMEngine's order."""
    if is_norm and cfg.get("norm_decay_mult") is not None:
        return "norm_decay_mult"
    if name == "bias" and cfg.get("bias_decay_mult") is not None:
        return "bias_decay_mult"
    # MMEngine's test is only in_channels == groups, so a 1-input-channel ordinary conv counts as depth-wise too.
    is_dwconv = isinstance(module, nn.Conv2d) and module.in_channels == module.groups
    if is_dwconv and cfg.get("dwconv_decay_mult") is not None:
        return "dwconv_decay_mult"
    if param.ndim == 1 and cfg.get("flat_decay_mult") is not None:
        return "flat_decay_mult"
    return None


def _default_key_problems(cfg: dict[str, Any], optim_kwargs: dict[str, Any], path: str) -> list[str]:
    has_wd = optim_kwargs.get("weight_decay") is not None
    problems: list[str] = []
    for key, value in cfg.items():
        kp = key_path(path, key)
        if key in LAYER_DECAY_KEYS:
            problems.append(
                f"{kp}: {key!r} is a LearningRateDecayOptimizerConstructor option and is ignored by "
                f"{DEFAULT_CONSTRUCTOR}; set {constructor_path(path)}: "
                f"{LAYER_DECAY_CONSTRUCTOR}, or remove it"
            )
        elif key not in DEFAULT_KEYS:
            problems.append(
                f"{kp}: unknown key (value {value!r}); allowed: {', '.join(DEFAULT_KEYS)}"
                + did_you_mean(str(key), DEFAULT_KEYS)
            )
        elif key == "custom_keys":
            problems += _custom_keys_problems(value, optim_kwargs, kp)
        elif key == "bypass_duplicate":
            if not isinstance(value, bool):
                problems.append(f"{kp}: must be true or false, got {value!r}")
        elif not is_mult(value):
            problems.append(f"{kp}: must be a number >= 0, got {value!r}")
        elif key in WD_MULT_KEYS and not has_wd:
            # MMEngine checks all but flat_decay_mult; without a base weight decay each of them silently does nothing.
            problems.append(
                f"{kp}: {value!r} multiplies {OPTIM_PATH}.weight_decay, which is not set; "
                f"set {OPTIM_PATH}.weight_decay or remove {kp}"
            )
    return problems


def _custom_keys_problems(custom_keys: Any, optim_kwargs: dict[str, Any], path: str) -> list[str]:
    if not isinstance(custom_keys, dict):
        return [f"{path}: must map a name substring to {{lr_mult, decay_mult, ...}}, got {custom_keys!r}"]
    problems: list[str] = []
    for key, entry in custom_keys.items():
        entry_path = key_path(path, key)
        if not isinstance(key, str) or not key:
            problems.append(f"{entry_path}: a key must be a non-empty string (a substring of parameter names)")
        if not isinstance(entry, dict):
            problems.append(f"{entry_path}: must be a mapping like {{lr_mult: 0.1, decay_mult: 0.0}}, got {entry!r}")
            continue
        for item, value in entry.items():
            item_path = key_path(entry_path, item)
            if item in ("lr_mult", "decay_mult"):
                if not is_mult(value):
                    problems.append(f"{item_path}: must be a number >= 0, got {value!r}")
            elif item in GROUP_DATA_KEYS:
                problems.append(f"{item_path}: {item!r} is reserved for the parameters themselves; remove it")
            elif item not in optim_kwargs and did_you_mean(str(item), ("lr_mult", "decay_mult")):
                # Other items are copied into the group as optimizer args, where torch ignores unknown names:
                # a typo such as lr_mul would silently do nothing.
                problems.append(
                    f"{item_path}: unknown option (value {value!r}); allowed: lr_mult, decay_mult or an optimizer "
                    "argument" + did_you_mean(str(item), ("lr_mult", "decay_mult"))
                )
        if "decay_mult" in entry and optim_kwargs.get("weight_decay") is None:
            problems.append(
                f"{entry_path}.decay_mult: {entry['decay_mult']!r} multiplies {OPTIM_PATH}.weight_decay, which is "
                f"not set; set {OPTIM_PATH}.weight_decay or remove {entry_path}.decay_mult"
            )
    return problems
