"""What every param-group constructor shares: the explanation row, constructor and key names, key helpers, the walk.

The default rules (``default_constructor``) and the layer-wise decay rules (``layer_decay``) both import from here
and from nothing of each other; ``constructors`` picks one of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from torch import nn

from engine.errors import ConfigError

DEFAULT_CONSTRUCTOR = "DefaultOptimWrapperConstructor"
LAYER_DECAY_CONSTRUCTOR = "LearningRateDecayOptimizerConstructor"
CONSTRUCTORS = (DEFAULT_CONSTRUCTOR, LAYER_DECAY_CONSTRUCTOR)

WD_MULT_KEYS = ("norm_decay_mult", "bias_decay_mult", "dwconv_decay_mult", "flat_decay_mult")
DEFAULT_KEYS = ("custom_keys", "bias_lr_mult", *WD_MULT_KEYS, "bypass_duplicate")
LAYER_DECAY_KEYS = ("decay_rate", "decay_type", "num_layers")
DECAY_TYPES = ("layer_wise", "layer_wise_vit", "stage_wise")

# The optimizer section of params.yaml; named in messages about optim.lr / optim.weight_decay.
OPTIM_PATH = "optim"
# Group keys that hold the tensors themselves rather than settings.
GROUP_DATA_KEYS = ("params", "param_names")


class ParamGroupError(ConfigError, ValueError):
    """Param-wise settings this model cannot take: one line per problem, each naming its params.yaml key.

    A ConfigError, so the CLI prints ``error:`` lines and exits 2 whether the check or the build finds it; also a
    ValueError, what a library caller of ``build_param_groups`` catches.
    """


@dataclass
class ParamRule:
    """How one parameter got its settings (one row of ``trainline param-groups``).

    ``lr``/``weight_decay`` of None mean the optimizer's own default (the key is absent from ``optim``).
    Frozen parameters left out of the optimizer get ``lr=0.0`` and a rule starting with ``frozen``.
    """

    name: str
    lr: float | None
    weight_decay: float | None
    rule: str


def walk(module: nn.Module, prefix: str = "") -> Iterator[tuple[nn.Module, str, str, nn.Parameter]]:
    """MMEngine's traversal: a module's own parameters, then its children, recursively (no global de-duplication).

    Yields ``(module, prefix, name, param)``; a tensor shared by two modules is yielded once per module, which is how
    tied parameters are found.
    """
    for name, param in module.named_parameters(recurse=False):
        yield module, prefix, name, param
    for child_name, child in module.named_children():
        yield from walk(child, f"{prefix}.{child_name}" if prefix else child_name)


def constructor_path(paramwise_path: str) -> str:
    """The key path of ``constructor``, a sibling of ``paramwise_cfg``."""
    wrapper_path = paramwise_path.rpartition(".")[0]
    return f"{wrapper_path}.constructor" if wrapper_path else "constructor"


def key_path(path: str, key: Any) -> str:
    """``path.key``, or ``path['key']`` when the key itself has dots or spaces (custom_keys such as ``'.weight'``)."""
    return f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"{path}[{key!r}]"


def is_mult(value: Any) -> bool:
    """A multiplier: a finite real number >= 0 (YAML booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
