"""Cosine annealing restarted at period boundaries (MMEngine's CosineRestart*)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

from engine.optim.schedulers.base import ParamScheduler, SupportsParamGroups, check_int, check_number


class CosineRestartParamScheduler(ParamScheduler):
    """Cosine annealing restarted at each period boundary from ``base * restart_weight``; holds after the last one."""

    _epoch_scaled = ('periods',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, periods: Sequence[int],
                 restart_weights: Sequence[float] = (1,), eta_min: float | None = None,
                 eta_min_ratio: float | None = None, **kwargs: Any) -> None:
        if (eta_min is None) == (eta_min_ratio is None):
            raise ValueError('give exactly one of eta_min or eta_min_ratio')
        if isinstance(periods, (str, bytes)) or not isinstance(periods, Sequence) or not periods:
            raise ValueError(f'periods must be a non-empty list of integers, got {periods!r}')
        self.periods = [check_int('periods[]', p, minimum=1) for p in periods]
        self.restart_weights = [check_number('restart_weights[]', w) for w in restart_weights]
        if len(self.periods) != len(self.restart_weights):
            raise ValueError(f'periods ({len(self.periods)}) and restart_weights ({len(self.restart_weights)}) '
                             'should have the same length')
        self.eta_min = None if eta_min is None else check_number('eta_min', eta_min)
        self.eta_min_ratio = None if eta_min_ratio is None else check_number('eta_min_ratio', eta_min_ratio)
        self.cumulative_periods = list(accumulate(self.periods))
        super().__init__(optimizer, param_name, **kwargs)

    def _eta_min(self, base: float) -> float:
        # __init__ sets exactly one of eta_min / eta_min_ratio
        return self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio  # type: ignore[return-value]

    def _position(self) -> tuple[int, int] | None:
        """(period index, step inside it) for ``last_step``; None once every period is over."""
        for i, cumulative in enumerate(self.cumulative_periods):
            if self.last_step < cumulative:
                return i, self.last_step - (cumulative - self.periods[i])
        return None

    def _get_value(self) -> list[Any]:
        position = self._position()
        if position is None:
            return self._current()
        idx, t = position
        period, weight = self.periods[idx], self.restart_weights[idx]
        if t == 0:
            return [b * weight for b in self.base_values]
        ratio = (1 + math.cos(math.pi * t / period)) / (1 + math.cos(math.pi * (t - 1) / period))
        return [ratio * (v - self._eta_min(b)) + self._eta_min(b) for b, v in self._with_base()]

