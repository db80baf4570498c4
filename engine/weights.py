"""Put saved weights into a model; when they do not fit, one line names the missing, unexpected, mis-shaped keys."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch
from torch import nn

from engine.errors import UserError

_SHOWN = 3  # keys named per kind: enough to recognise the cause, short enough for one line


def _first(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def fit_report(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) keys of `weights` against `model`'s state dict, each sorted."""
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    shaped = sorted(k for k in set(own) & set(weights) if tuple(own[k].shape) != tuple(weights[k].shape))
    return missing, unexpected, shaped


def describe(missing: list[str], unexpected: list[str], shaped: list[str], model: nn.Module,
             weights: Mapping[str, torch.Tensor]) -> str:
    """`missing: a, b; unexpected: c; mis-shaped: d (saved 3x4, model 5x4)` — the parts that are non-empty."""
    own = model.state_dict()
    parts = []
    if missing:
        parts.append(f"missing {len(missing)}: {_first(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {_first(unexpected)}")
    if shaped:
        first = shaped[0]
        size = "x".join(map(str, weights[first].shape)), "x".join(map(str, own[first].shape))
        parts.append(f"mis-shaped {len(shaped)}: {_first(shaped)} (e.g. {first}: saved {size[0]}, model {size[1]})")
    return "; ".join(parts)


def load_weights(model: nn.Module, weights: Mapping[str, torch.Tensor], *, source: str, strict: bool = True,
                 cause: str = "") -> None:
    """Load `weights` into `model`. Strict: any mismatch is a UserError naming the first keys of each kind and the
    likely `cause`. Non-strict: the keys that fit are loaded, the rest are named in a warning."""
    missing, unexpected, shaped = fit_report(model, weights)
    if not (missing or unexpected or shaped):
        model.load_state_dict(dict(weights))
        return
    detail = describe(missing, unexpected, shaped, model, weights)
    if strict:
        raise UserError(f"{source}: the weights do not fit the model ({detail}){'; ' + cause if cause else ''}")
    fitting = {k: v for k, v in weights.items() if k not in unexpected and k not in shaped}
    model.load_state_dict(fitting, strict=False)
    logging.getLogger("trainline").warning("%s: loaded %d of %d tensors non-strictly (%s)", source, len(fitting),
                                           len(model.state_dict()), detail)
