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
from engine.optim.schedulers.base import INF, ParamScheduler, SchedulerArgError, SupportsParamGroups
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


def training_end(train_cfg: Mapping[str, Any], *, by_epoch: bool, epoch_length: int | None) -> int | None:
    """The end of training in an entry's unit (epochs if ``by_epoch``, else iterations): the default ``end``.

    A unit the loop does not count in needs ``epoch_length`` (None when it is unknown): iterations of an epoch loop
    are ``max_epochs * epoch_length``; epochs of an iteration loop are ``ceil(max_iters / epoch_length)``, so an
    epoch-based entry converted to iterations covers the whole run (its last epoch may reach past max_iters).
    """
    if train_cfg['type'] == 'EpochBasedTrainLoop':
        epochs = train_cfg['max_epochs']
        if by_epoch:
            return epochs
        return None if epoch_length is None else epochs * epoch_length
    iters = train_cfg['max_iters']
    if not by_epoch:
        return iters
    return None if epoch_length is None else -(-iters // epoch_length)


def entry_problem(path: str, exc: Exception) -> str:
    """One line for a refused entry at ``path`` (``param_scheduler.N``), naming the key when the error knows it."""
    return f'{path}.{exc.key}: {exc}' if isinstance(exc, SchedulerArgError) else f'{path}: {exc}'


def _check_cfg_keys(name: str, cls: type[ParamScheduler], kwargs: Mapping[str, Any]) -> None:
    allowed, required = _signature(cls)
    problems = []
    for key in sorted(set(kwargs) - allowed):
        problems.append(f"unknown key '{key}'" + did_you_mean(key, allowed))
    problems += [f"missing required key '{key}'" for key in sorted(required - set(kwargs))]
    if problems:
        raise ValueError(f'{name}: {"; ".join(problems)}. Allowed keys: {", ".join(sorted(allowed))}')


def build_scheduler(cfg: Mapping[str, Any], optimizer: SupportsParamGroups, *, default_by_epoch: bool,
                    epoch_length: int | None, max_end: int | None) -> ParamScheduler:
    """Build one ``param_scheduler`` entry of params.yaml.

    ``by_epoch`` missing -> ``default_by_epoch`` (the train loop's kind; MMEngine would default to True).
    ``end`` missing -> ``max_end``, the end of training in the entry's own unit (``training_end``; epochs for a
    converted entry, scaled with the rest). ``convert_to_iter_based: true`` builds the iteration-based
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
        if max_end is None:
            raise ValueError(f'{name}: end is not set and the end of training in its unit is unknown (it needs the '
                             'epoch length, which needs the training data); set end')
        kwargs['end'] = max_end
    if not convert:
        scheduler = cls(optimizer, by_epoch=by_epoch, **kwargs)
    elif not by_epoch:
        raise ValueError(f'{name}: convert_to_iter_based needs by_epoch: true (the entry is already per-iteration)')
    elif epoch_length is None:
        raise ValueError(f'{name}: convert_to_iter_based needs the epoch length (train iterations per epoch), '
                         'which needs the training data')
    else:
        scheduler = cls.build_iter_from_epoch(optimizer, by_epoch=True, epoch_length=epoch_length, **kwargs)
    _check_one_cycle_window(name, scheduler, epoch_length if convert else None)
    return scheduler


def _check_one_cycle_window(name: str, scheduler: ParamScheduler, epoch_length: int | None) -> None:
    # MMEngine only fails when the step past total_steps arrives, mid-training; catch it at build time instead.
    if isinstance(scheduler, OneCycleParamScheduler) and scheduler.end != INF:
        last = scheduler.end - scheduler.begin - 1
        if last > scheduler.total_steps:
            steps = (f'{scheduler.total_steps}' if epoch_length is None else
                     f'{scheduler.total_steps // epoch_length} epochs = {scheduler.total_steps} iterations '
                     f'(convert_to_iter_based, {epoch_length} per epoch)')
            raise SchedulerArgError('total_steps', f'{name}: total_steps={steps} is shorter than the window '
                                    f'[{scheduler.begin}, {scheduler.end}); it would fail at step '
                                    f'{scheduler.total_steps + 1}. Raise total_steps or lower end')
