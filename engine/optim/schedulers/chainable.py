"""The chainable schedulers: step, multi-step, constant, exponential, cosine annealing, linear and poly.

Each step rewrites a group's *current* value, so sequential schedulers hand the value over and overlapping ones
compose multiplicatively (MMEngine's chainable forms).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from engine.optim.schedulers.base import (
    INF,
    ParamScheduler,
    SupportsParamGroups,
    check_int,
    check_number,
    check_window,
)


class StepParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` every ``step_size`` steps."""

    _epoch_scaled = ('step_size',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, step_size: int, gamma: float = 0.1,
                 **kwargs: Any) -> None:
        self.step_size = check_int('step_size', step_size, minimum=1)
        self.gamma = check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current()
        return [v * self.gamma for v in self._current()]


class MultiStepParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` at each milestone (relative to ``begin``; a repeated milestone applies gamma twice)."""

    _epoch_scaled = ('milestones',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, milestones: Sequence[int],
                 gamma: float = 0.1, **kwargs: Any) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise ValueError(f'milestones must be a list of integers, got {milestones!r}')
        counts: dict[int, int] = {}
        for m in milestones:
            m = check_int('milestones[]', m, minimum=0)
            counts[m] = counts.get(m, 0) + 1
        # A plain dict (MMEngine keeps a Counter) so the state stays loadable with weights_only=True.
        self.milestones = counts
        self.gamma = check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step not in self.milestones:
            return self._current()
        factor = self.gamma ** self.milestones[self.last_step]
        return [v * factor for v in self._current()]


class ConstantParamScheduler(ParamScheduler):
    """Multiply by ``factor`` from ``begin``; restore the value at the window's last step (t = end-begin-1)."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, factor: float = 1.0 / 3,
                 **kwargs: Any) -> None:
        # factor 0 would make the restoring division impossible, so (0, 1] rather than MMEngine's [0, 1].
        if check_number('factor', factor, 0.0, 1.0) == 0:
            raise ValueError('factor must lie in (0, 1], got 0')
        self.factor = factor
        super().__init__(optimizer, param_name, **kwargs)

    @property
    def total_iters(self) -> int:
        return self.end - self.begin - 1

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return [v * self.factor for v in self._current()]
        if self.last_step != self.total_iters:
            return self._current()
        return [v * (1.0 / self.factor) for v in self._current()]


class ExponentialParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` at every step after ``begin``."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, gamma: float, **kwargs: Any) -> None:
        self.gamma = check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current()
        return [v * self.gamma for v in self._current()]


class CosineAnnealingParamScheduler(ParamScheduler):
    """Cosine from the current value to ``eta_min`` (or ``base*eta_min_ratio``) over ``T_max`` (default end-begin).

    With the default ``T_max = end - begin`` the value does not quite reach eta_min at the last active step (MMEngine).
    """

    _epoch_scaled = ('T_max',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, T_max: int | None = None,
                 eta_min: float | None = None, eta_min_ratio: float | None = None, **kwargs: Any) -> None:
        if eta_min is None and eta_min_ratio is None:
            eta_min = 0.0
        if eta_min is not None and eta_min_ratio is not None:
            raise ValueError('give either eta_min or eta_min_ratio, not both')
        self.eta_min = None if eta_min is None else check_number('eta_min', eta_min)
        self.eta_min_ratio = None if eta_min_ratio is None else check_number('eta_min_ratio', eta_min_ratio)
        begin, end = check_window(kwargs.get('begin', 0), kwargs.get('end', INF))
        self.T_max = check_int('T_max', T_max, minimum=1) if T_max else end - begin
        super().__init__(optimizer, param_name, **kwargs)

    def _eta_min(self, base: float) -> float:
        # __init__ sets exactly one of eta_min / eta_min_ratio
        return self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio  # type: ignore[return-value]

    def _get_value(self) -> list[Any]:
        t, T = self.last_step, self.T_max
        if t == 0:
            return self._current()
        pairs = self._with_base()
        if (t - 1 - T) % (2 * T) == 0:
            # Leaving the trough: the ratio form would divide by 1+cos(pi)=0, so step additively.
            return [v + (b - self._eta_min(b)) * (1 - math.cos(math.pi / T)) / 2 for b, v in pairs]
        ratio = (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
        return [ratio * (v - self._eta_min(b)) + self._eta_min(b) for b, v in pairs]


class LinearParamScheduler(ParamScheduler):
    """Scale by a factor moving linearly from ``start_factor`` (at begin) to ``end_factor`` (at end-1)."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, **kwargs: Any) -> None:
        # start 0 is refused: the chainable form multiplies the current value, which could never leave 0.
        if check_number('start_factor', start_factor, 0.0, 1.0) == 0:
            raise ValueError('start_factor must lie in (0, 1], got 0')
        self.start_factor = start_factor
        self.end_factor = check_number('end_factor', end_factor, 0.0, 1.0)
        super().__init__(optimizer, param_name, **kwargs)

    @property
    def total_iters(self) -> int:
        return self.end - self.begin - 1

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return [v * self.start_factor for v in self._current()]
        delta = self.end_factor - self.start_factor
        factor = 1.0 + delta / (self.total_iters * self.start_factor + (self.last_step - 1) * delta)
        return [v * factor for v in self._current()]


class PolyParamScheduler(ParamScheduler):
    """Polynomial decay to ``eta_min`` reached at the window's last step: ``eta + (b-eta)(1-t/T)^power``."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, eta_min: float = 0,
                 power: float = 1.0, **kwargs: Any) -> None:
        self.eta_min = check_number('eta_min', eta_min)
        self.power = check_number('power', power)
        super().__init__(optimizer, param_name, **kwargs)

    @property
    def total_iters(self) -> int:
        return self.end - self.begin - 1

    def _eta_min(self, base: float) -> float:
        return self.eta_min

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current()
        decay = (1 - 1 / (self.total_iters - self.last_step + 1)) ** self.power
        return [(v - self._eta_min(b)) * decay + self._eta_min(b) for b, v in self._with_base()]


class PolyRatioParamScheduler(PolyParamScheduler):
    """mmseg's PolyLRRatio: PolyParamScheduler whose floor is ``base * eta_min_ratio`` when the ratio is given."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, eta_min_ratio: float | None = None,
                 **kwargs: Any) -> None:
        self.eta_min_ratio = None if eta_min_ratio is None else check_number('eta_min_ratio', eta_min_ratio)
        super().__init__(optimizer, param_name, **kwargs)

    def _eta_min(self, base: float) -> float:
        # __init__ sets exactly one of eta_min / eta_min_ratio
        return self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio  # type: ignore[return-value]

