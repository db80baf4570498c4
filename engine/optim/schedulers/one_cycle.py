"""The 1cycle policy: absolute (not chainable) lr values rising to eta_max and annealing to a floor."""

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
    groups_of,
)


def _anneal(strategy: str, start: float, end: float, pct: float) -> float:
    if strategy == 'cos':
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
    return (end - start) * pct + start


class OneCycleParamScheduler(ParamScheduler):
    """1cycle policy (lr only): initial=eta_max/div_factor -> eta_max -> initial/final_div_factor.

    Not chainable: it writes absolute values and overwrites ``initial_lr``/``max_lr``/``min_lr`` in every group.
    """

    _epoch_scaled = ('total_steps',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, eta_max: float | Sequence[float] = 0,
                 total_steps: int | None = None, pct_start: float = 0.3, anneal_strategy: str = 'cos',
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 **kwargs: Any) -> None:
        if param_name != 'lr':
            raise ValueError(f'OneCycle only schedules the learning rate, got param_name={param_name!r}')
        begin, end = check_window(kwargs.get('begin', 0), kwargs.get('end', INF))
        if total_steps is None and end == INF:
            raise ValueError('OneCycle needs total_steps or a finite end (total_steps defaults to end - begin)')
        self.total_steps = end - begin if total_steps is None else check_int('total_steps', total_steps, 1)
        check_number('pct_start', pct_start, 0.0, 1.0)
        if anneal_strategy not in ('cos', 'linear'):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.eta_max = eta_max
        self.div_factor = check_number('div_factor', div_factor, low=0.0)
        self.final_div_factor = check_number('final_div_factor', final_div_factor, low=0.0)
        if div_factor == 0 or final_div_factor == 0:
            raise ValueError('div_factor and final_div_factor must be > 0')
        self._schedule_phases = self._phases(pct_start, bool(three_phase))
        groups = groups_of(optimizer)
        if kwargs.get('last_step', -1) == -1:
            for group, peak in zip(groups, self._per_group(eta_max, len(groups)), strict=True):
                group['initial_lr'] = peak / div_factor
                group['max_lr'] = peak
                group['min_lr'] = group['initial_lr'] / final_div_factor
        super().__init__(optimizer, param_name, **kwargs)

    @staticmethod
    def _per_group(eta_max: Any, n_groups: int) -> list[float]:
        if isinstance(eta_max, (list, tuple)):
            if len(eta_max) != n_groups:
                raise ValueError(f'expected {n_groups} values for eta_max (one per param group), got {len(eta_max)}')
            return [check_number('eta_max[]', v) for v in eta_max]
        return [check_number('eta_max', eta_max)] * n_groups

    def _phases(self, pct_start: float, three_phase: bool) -> list[dict[str, Any]]:
        # end_step is a float, as in torch/MMEngine: the phase boundary may fall between steps.
        up = float(pct_start * self.total_steps) - 1
        if three_phase:
            return [{'end_step': up, 'start': 'initial_lr', 'end': 'max_lr'},
                    {'end_step': float(2 * pct_start * self.total_steps) - 2, 'start': 'max_lr', 'end': 'initial_lr'},
                    {'end_step': self.total_steps - 1, 'start': 'initial_lr', 'end': 'min_lr'}]
        return [{'end_step': up, 'start': 'initial_lr', 'end': 'max_lr'},
                {'end_step': self.total_steps - 1, 'start': 'max_lr', 'end': 'min_lr'}]

    def _get_value(self) -> list[Any]:
        t = self.last_step
        if t > self.total_steps:
            raise ValueError(f'Tried to step {t + 1} times. The specified number of total steps is {self.total_steps}')
        values = []
        for group in self._groups:
            start_step = 0.0
            for i, phase in enumerate(self._schedule_phases):
                end_step = phase['end_step']
                if t <= end_step or i == len(self._schedule_phases) - 1:
                    span = end_step - start_step
                    # An empty phase (pct_start*total_steps == 1) has reached its end value already.
                    pct = (t - start_step) / span if span else 1.0
                    values.append(_anneal(self.anneal_strategy, group[phase['start']], group[phase['end']], pct))
                    break
                start_step = end_step
        return values

