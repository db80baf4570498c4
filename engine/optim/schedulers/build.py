"""The scheduler registry and the builder of one ``param_scheduler`` entry: keys, defaults, conversion, window."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from engine.optim.schedulers.aliases import (
    ConstantLR,
    ConstantMomentum,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    CosineRestartLR,
    CosineRestartMomentum,
    ExponentialLR,
    ExponentialMomentum,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    MultiStepMomentum,
    OneCycleLR,
    PolyLR,
    PolyLRRatio,
    PolyMomentum,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    StepLR,
    StepMomentum,
)
from engine.optim.schedulers.base import INF, ParamScheduler, SupportsParamGroups
from engine.optim.schedulers.chainable import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    StepParamScheduler,
)
from engine.optim.schedulers.cosine_restart import CosineRestartParamScheduler
from engine.optim.schedulers.one_cycle import OneCycleParamScheduler
from engine.optim.schedulers.plateau import ReduceOnPlateauParamScheduler
from engine.suggest import closest, did_you_mean

SCHEDULERS: dict[str, type[ParamScheduler]] = {
    cls.__name__: cls
    for cls in (
        LinearLR, ConstantLR, PolyLR, PolyLRRatio, CosineAnnealingLR, MultiStepLR, StepLR, ExponentialLR,
        OneCycleLR, CosineRestartLR, ReduceOnPlateauLR,
        LinearMomentum, ConstantMomentum, PolyMomentum, CosineAnnealingMomentum, MultiStepMomentum, StepMomentum,
        ExponentialMomentum, CosineRestartMomentum, ReduceOnPlateauMomentum,
        LinearParamScheduler, ConstantParamScheduler, PolyParamScheduler, CosineAnnealingParamScheduler,
        MultiStepParamScheduler, StepParamScheduler, ExponentialParamScheduler, OneCycleParamScheduler,
        CosineRestartParamScheduler, ReduceOnPlateauParamScheduler,
    )
}

# Keys the builder handles itself; 'last_step' is deliberately absent: resuming goes through load_state_dict.
_BUILDER_KEYS = frozenset({'type', 'convert_to_iter_based'})
_NOT_CFG = frozenset({'self', 'optimizer', 'last_step'})


def _lookup(name: Any) -> type[ParamScheduler]:
    if name is None:
        raise ValueError(f'a scheduler entry needs a type key; allowed: {", ".join(sorted(SCHEDULERS))}')
    if name in SCHEDULERS:
        return SCHEDULERS[name]
    close = closest(str(name), SCHEDULERS)
    hint = f"; did you mean '{close}'?" if close else f'; allowed: {", ".join(sorted(SCHEDULERS))}'
    raise ValueError(f'unknown scheduler type {name!r}{hint}')


def _signature(cls: type[ParamScheduler]) -> tuple[set[str], set[str]]:
    """(accepted cfg keys, required cfg keys) from the constructors along the class's MRO."""
    allowed, required = set(_BUILDER_KEYS), set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if klass is object or init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in _NOT_CFG:
                continue
            allowed.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    fixed = getattr(cls, '_fixed_param_name', None)
    if fixed is not None:
        allowed.discard('param_name')
        required.discard('param_name')
    return allowed, required


def scheduler_kwargs(name: str) -> set[str]:
    """Every cfg key a ``type: <name>`` entry accepts (type, begin, end, by_epoch, convert_to_iter_based included)."""
    return _signature(_lookup(name))[0]


def resolve_by_epoch(cfg: Mapping[str, Any], default_by_epoch: bool) -> bool:
    """The by_epoch a cfg entry gets: its own, else the train loop's kind (ReduceOnPlateau*: always epoch-based)."""
    if cfg.get('by_epoch') is not None:
        return cfg['by_epoch']
    return True if _lookup(cfg.get('type')).need_val_args else default_by_epoch


def _check_cfg_keys(name: str, cls: type[ParamScheduler], kwargs: Mapping[str, Any]) -> None:
    allowed, required = _signature(cls)
    problems = []
    for key in sorted(set(kwargs) - allowed):
        problems.append(f"unknown key '{key}'" + did_you_mean(key, allowed))
    problems += [f"missing required key '{key}'" for key in sorted(required - set(kwargs))]
    if problems:
        raise ValueError(f'{name}: {"; ".join(problems)}. Allowed keys: {", ".join(sorted(allowed))}')


def build_scheduler(cfg: Mapping[str, Any], optimizer: SupportsParamGroups, *, default_by_epoch: bool,
                    epoch_length: int | None, max_end: int) -> ParamScheduler:
    """Build one ``param_scheduler`` entry of params.yaml.

    ``by_epoch`` missing -> ``default_by_epoch`` (the train loop's kind; MMEngine would default to True).
    ``end`` missing -> ``max_end``, which the caller computes for ``resolve_by_epoch(cfg, default_by_epoch)``
    (max_epochs if epoch-based, else max_iters). ``convert_to_iter_based: true`` builds the iteration-based
    equivalent of an epoch-based entry and needs ``epoch_length`` (train iterations per epoch).
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f'a scheduler entry must be a mapping with a type key, got {cfg!r}')
    kwargs = dict(cfg)
    name = kwargs.pop('type', None)
    cls = _lookup(name)
    _check_cfg_keys(name, cls, kwargs)
    convert = kwargs.pop('convert_to_iter_based', False)
    by_epoch = resolve_by_epoch(cfg, default_by_epoch)
    kwargs.pop('by_epoch', None)
    for key, value in (('by_epoch', by_epoch), ('convert_to_iter_based', convert)):
        if not isinstance(value, bool):
            raise ValueError(f'{name}: {key} must be true or false, got {value!r}')
    if kwargs.get('end') is None:
        kwargs['end'] = max_end
    if not convert:
        scheduler = cls(optimizer, by_epoch=by_epoch, **kwargs)
    elif not by_epoch:
        raise ValueError(f'{name}: convert_to_iter_based needs by_epoch: true (the entry is already per-iteration)')
    elif epoch_length is None:
        raise ValueError(f'{name}: convert_to_iter_based needs the epoch length, which only an epoch-based loop has')
    else:
        scheduler = cls.build_iter_from_epoch(optimizer, by_epoch=True, epoch_length=epoch_length, **kwargs)
    _check_one_cycle_window(name, scheduler)
    return scheduler


def _check_one_cycle_window(name: str, scheduler: ParamScheduler) -> None:
    # MMEngine only fails when the step past total_steps arrives, mid-training; catch it at build time instead.
    if isinstance(scheduler, OneCycleParamScheduler) and scheduler.end != INF:
        last = scheduler.end - scheduler.begin - 1
        if last > scheduler.total_steps:
            raise ValueError(f'{name}: total_steps={scheduler.total_steps} is shorter than the window '
                             f'[{scheduler.begin}, {scheduler.end}); it would fail at step {scheduler.total_steps + 1}.'
                             ' Raise total_steps or lower end')
