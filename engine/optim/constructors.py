"""Which param-group constructor applies: ``build_param_groups`` and ``paramwise_problems`` dispatch on ``constructor``.

The rules themselves live in ``default_constructor`` (MMEngine's DefaultOptimWrapperConstructor) and ``layer_decay``
(MMSeg's LearningRateDecayOptimizerConstructor); both build on ``param_groups_base``, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from engine.optim.default_constructor import build_default_groups, default_problems
from engine.optim.layer_decay import build_layer_decay_groups, layer_decay_problems
from engine.optim.param_groups_base import (
    CONSTRUCTORS,
    LAYER_DECAY_CONSTRUCTOR,
    ParamGroupError,
    ParamRule,
    constructor_path,
)
from engine.suggest import did_you_mean

__all__ = ["CONSTRUCTORS", "ParamGroupError", "ParamRule", "build_param_groups", "paramwise_problems"]


def build_param_groups(
    model: nn.Module,
    optim_kwargs: dict[str, Any],
    paramwise_cfg: dict[str, Any] | None,
    constructor: str | None = None,
) -> tuple[list[dict[str, Any]], list[ParamRule]]:
    """Torch param groups for ``optimizer_cls(groups, **optim_kwargs)`` plus one explanation row per parameter.

    ``optim_kwargs`` is params.yaml ``optim`` without ``type``. Pass the bare model (not a DDP wrapper): rules match
    on parameter names. No ``paramwise_cfg`` (None or empty) and no layer-decay constructor gives one group holding
    every parameter, frozen ones included, as MMEngine does. Raises ParamGroupError (a ConfigError and a
    ValueError) listing every config problem, or what this model cannot take (tied parameters, too few layers).
    """
    problems = paramwise_problems(paramwise_cfg, optim_kwargs, constructor)
    if problems:
        raise ParamGroupError(problems)
    if constructor == LAYER_DECAY_CONSTRUCTOR:
        return build_layer_decay_groups(model, optim_kwargs, paramwise_cfg or {})
    return build_default_groups(model, optim_kwargs, paramwise_cfg)


def paramwise_problems(
    paramwise_cfg: dict[str, Any] | None,
    optim_kwargs: dict[str, Any],
    constructor: str | None,
    path: str = "optim_wrapper.paramwise_cfg",
) -> list[str]:
    """Every problem in the param-wise settings, one message each (key path, bad value, what is allowed)."""
    ctor_path = constructor_path(path)
    if constructor is not None and constructor not in CONSTRUCTORS:
        # Without a known constructor there is no set of keys to check the rest against.
        return [
            f"{ctor_path}: unknown constructor {constructor!r}; allowed: {', '.join(CONSTRUCTORS)}"
            + did_you_mean(str(constructor), CONSTRUCTORS)
        ]
    if paramwise_cfg is not None and not isinstance(paramwise_cfg, dict):
        return [f"{path}: must be a mapping of param-wise options, got {paramwise_cfg!r}"]
    cfg = paramwise_cfg or {}
    if constructor == LAYER_DECAY_CONSTRUCTOR:
        return layer_decay_problems(cfg, optim_kwargs, path)
    return default_problems(cfg, optim_kwargs, path)
