"""The lr and momentum schedulers by name: mixins fixing ``param_name`` over the generic param schedulers."""

from __future__ import annotations

from typing import Any, ClassVar

from engine.optim.schedulers.base import SupportsParamGroups, groups_of
from engine.optim.schedulers.chainable import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    PolyRatioParamScheduler,
    StepParamScheduler,
)
from engine.optim.schedulers.cosine_restart import CosineRestartParamScheduler
from engine.optim.schedulers.one_cycle import OneCycleParamScheduler
from engine.optim.schedulers.plateau import ReduceOnPlateauParamScheduler


class _LRMixin:
    """Fixes ``param_name='lr'``."""

    _fixed_param_name: ClassVar[str] = 'lr'

    def __init__(self, optimizer: SupportsParamGroups, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, 'lr', *args, **kwargs)  # type: ignore[call-arg]


def _uses_betas(optimizer: Any, groups: list[dict[str, Any]]) -> bool:
    defaults = getattr(optimizer, 'defaults', None)
    if isinstance(defaults, dict) and ('momentum' in defaults or 'betas' in defaults):
        return 'momentum' not in defaults
    # No usable defaults (a view object): decide from the groups. betas wins because an Adam-family group
    # carries a mirrored 'momentum' once a momentum scheduler has run.
    if groups and all('betas' in g for g in groups):
        return True
    if groups and all('momentum' in g for g in groups):
        return False
    raise ValueError('optimizer must support momentum (SGD-style momentum or Adam-style betas) to use a '
                     'momentum scheduler')


class _MomentumMixin:
    """Fixes ``param_name='momentum'``; for Adam-family optimizers schedules ``betas[0]`` through a mirrored key."""

    _fixed_param_name: ClassVar[str] = 'momentum'

    def __init__(self, optimizer: SupportsParamGroups, *args: Any, **kwargs: Any) -> None:
        groups = groups_of(optimizer)
        self.use_betas = _uses_betas(optimizer, groups)
        if self.use_betas:
            for group in groups:
                group['momentum'] = group['betas'][0]
        super().__init__(optimizer, 'momentum', *args, **kwargs)  # type: ignore[call-arg]

    def step(self, *args: Any, **kwargs: Any) -> None:
        super().step(*args, **kwargs)  # type: ignore[misc]
        if self.use_betas:
            for group in self.optimizer.param_groups:  # type: ignore[attr-defined]
                group['betas'] = (group['momentum'], group['betas'][1])


class LinearLR(_LRMixin, LinearParamScheduler):
    """Linear lr factor from start_factor to end_factor (warm-up)."""


class ConstantLR(_LRMixin, ConstantParamScheduler):
    """lr times factor until the window's last step."""


class PolyLR(_LRMixin, PolyParamScheduler):
    """Polynomial lr decay to eta_min."""


class PolyLRRatio(_LRMixin, PolyRatioParamScheduler):
    """mmseg's polynomial lr decay to base*eta_min_ratio."""


class CosineAnnealingLR(_LRMixin, CosineAnnealingParamScheduler):
    """Cosine lr annealing."""


class MultiStepLR(_LRMixin, MultiStepParamScheduler):
    """lr times gamma at each milestone."""


class StepLR(_LRMixin, StepParamScheduler):
    """lr times gamma every step_size steps."""


class ExponentialLR(_LRMixin, ExponentialParamScheduler):
    """lr times gamma every step."""


class OneCycleLR(_LRMixin, OneCycleParamScheduler):
    """1cycle lr policy."""


class CosineRestartLR(_LRMixin, CosineRestartParamScheduler):
    """Cosine lr annealing with restarts."""


class ReduceOnPlateauLR(_LRMixin, ReduceOnPlateauParamScheduler):
    """lr times factor when the monitored metric plateaus."""


class LinearMomentum(_MomentumMixin, LinearParamScheduler):
    """Linear momentum factor."""


class ConstantMomentum(_MomentumMixin, ConstantParamScheduler):
    """Momentum times factor until the window's last step."""


class PolyMomentum(_MomentumMixin, PolyParamScheduler):
    """Polynomial momentum decay."""


class CosineAnnealingMomentum(_MomentumMixin, CosineAnnealingParamScheduler):
    """Cosine momentum annealing."""


class MultiStepMomentum(_MomentumMixin, MultiStepParamScheduler):
    """Momentum times gamma at each milestone."""


class StepMomentum(_MomentumMixin, StepParamScheduler):
    """Momentum times gamma every step_size steps."""


class ExponentialMomentum(_MomentumMixin, ExponentialParamScheduler):
    """Momentum times gamma every step."""


class CosineRestartMomentum(_MomentumMixin, CosineRestartParamScheduler):
    """Cosine momentum annealing with restarts."""


class ReduceOnPlateauMomentum(_MomentumMixin, ReduceOnPlateauParamScheduler):
    """Momentum times factor when the monitored metric plateaus."""

