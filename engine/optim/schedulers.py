"""Parameter schedulers (lr, momentum, any param-group value) with MMEngine's exact stepping semantics.

This file is longer than 400 lines on purpose: the ten scheduler families share one base class, one lr/momentum
adapter pair and one builder, and their MMEngine contract (window, chaining, state) is easiest to keep exact when it
lives next to every formula that depends on it.

Contract (as in MMEngine's ``_ParamScheduler``):
- The first scheduler built for a param name records ``initial_<name>`` in every group; all later ones read their
  base values from it.
- Construction calls ``step()`` once, so a scheduler with ``begin == 0`` applies its t=0 value immediately.
- ``step()`` advances the global step; inside ``[begin, end)`` it advances ``last_step`` (t counts from ``begin``)
  and rewrites every group's value from the group's *current* value (chainable forms): sequential schedulers hand
  the value over and overlapping ones compose multiplicatively. Call ``step()`` after the optimizer step, in build
  order.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate
from typing import Any, ClassVar, Protocol

from engine.suggest import closest, did_you_mean

logger = logging.getLogger(__name__)

# MMEngine's "no end". An int (not math.inf) so begin/end arithmetic and checkpointed state stay integral.
INF = int(1e9)


class SupportsParamGroups(Protocol):
    """Anything with torch-style ``param_groups``: a torch optimizer or a view adding a pseudo group."""

    param_groups: list[dict[str, Any]]


# --------------------------------------------------------------------------------------------------------------
# argument checks (ValueError: these values come from params.yaml)


def _check_int(name: str, value: Any, minimum: int | None = None) -> int:
    # YAML may deliver integral floats (1.5e3); anything else is a typo worth reporting.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be an integer, got {value!r}')
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f'{name} must be an integer, got {value!r}')
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return value


def _check_number(name: str, value: Any, low: float | None = None, high: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number, got {value!r}')
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f'{name} must lie in [{low}, {high}], got {value}')
    return value


def _check_window(begin: Any, end: Any) -> tuple[int, int]:
    begin = _check_int('begin', begin, minimum=0)
    if isinstance(end, float) and end == math.inf:
        end = INF
    end = _check_int('end', end)
    if end <= begin:
        raise ValueError(f'end should be larger than begin, but got begin={begin}, end={end}')
    return begin, end


def _groups_of(optimizer: Any) -> list[dict[str, Any]]:
    groups = getattr(optimizer, 'param_groups', None)
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise TypeError(f'optimizer must have a param_groups list of dicts, got {type(optimizer).__name__}')
    return groups


# --------------------------------------------------------------------------------------------------------------
# base class


class ParamScheduler:
    """Base of every scheduler: the window, the initial-value bookkeeping, stepping and state."""

    # True for schedulers stepped with validation metrics (ReduceOnPlateau*).
    need_val_args: ClassVar[bool] = False
    # cfg keys that count epochs and must be scaled by build_iter_from_epoch (besides begin/end).
    _epoch_scaled: ClassVar[tuple[str, ...]] = ()

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, begin: int = 0, end: int = INF,
                 last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        _groups_of(optimizer)
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin, self.end = _check_window(begin, end)
        self.by_epoch = bool(by_epoch)
        self._init_base_values(last_step)
        self._global_step = -1
        self.verbose = verbose
        self.step()

    @property
    def _groups(self) -> list[dict[str, Any]]:
        # Re-read every time: a view object may rebuild its list (real groups + pseudo group) on access.
        return self.optimizer.param_groups

    def _init_base_values(self, last_step: int) -> None:
        name, key = self.param_name, f'initial_{self.param_name}'
        if isinstance(last_step, bool) or not isinstance(last_step, int) or last_step < -1:
            raise ValueError(f'last_step must be an integer >= -1, got {last_step!r}')
        for i, group in enumerate(self._groups):
            if last_step == -1:
                if name not in group and key not in group:
                    raise ValueError(f"param group {i} has no '{name}' to schedule (keys: {sorted(group)})")
                # setdefault: the first scheduler built fixes the base value for all later ones.
                group.setdefault(key, group[name])
            elif key not in group:
                raise KeyError(f"param '{key}' is not specified in param_groups[{i}] when resuming an optimizer")
        self.base_values = [group[key] for group in self._groups]
        self.last_step = last_step

    def _current(self) -> list[Any]:
        return [group[self.param_name] for group in self._groups]

    def _with_base(self) -> list[tuple[Any, Any]]:
        """(base value, current value) per group; strict, since a group added after build has no base value."""
        return list(zip(self.base_values, self._current(), strict=True))

    def _get_value(self) -> list[Any]:
        """New value per group, computed from the groups' current values (chainable form)."""
        raise NotImplementedError

    def _apply(self, values: Sequence[Any]) -> None:
        for i, (group, value) in enumerate(zip(self._groups, values, strict=True)):
            group[self.param_name] = value
            if self.verbose:
                logger.info('%s: %s of group %d -> %.4e at step %d', type(self).__name__, self.param_name, i,
                            value, self.last_step)

    def step(self) -> None:
        """Advance one step (one iteration or one epoch, per ``by_epoch``); call it after the optimizer step."""
        self._global_step += 1
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            self._apply(self._get_value())
        self._last_value = self._current()

    def get_last_value(self) -> list[Any]:
        """The value of every group after the last ``step()``."""
        return list(self._last_value)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer; only plain data, so ``torch.load(weights_only=True)`` can read it."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items() if k != 'optimizer'}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        name = state_dict.get('param_name', self.param_name)
        if name != self.param_name:
            raise ValueError(f'{type(self).__name__} schedules {self.param_name!r} but the saved state schedules '
                             f'{name!r}: the scheduler list must match the one the checkpoint was saved with')
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, begin: int = 0, end: int = INF, by_epoch: bool = True,
                              epoch_length: int | None = None, **kwargs: Any) -> ParamScheduler:
        """Build an iteration-based scheduler from epoch-based arguments (``convert_to_iter_based: true``)."""
        if not by_epoch:
            raise ValueError('convert_to_iter_based needs an epoch-based scheduler (by_epoch: true)')
        if isinstance(epoch_length, bool) or not isinstance(epoch_length, int) or epoch_length <= 0:
            raise ValueError(f'epoch_length must be a positive integer, got {epoch_length!r}')
        for key in cls._epoch_scaled:
            value = kwargs.get(key)
            if isinstance(value, (list, tuple)):
                kwargs[key] = [v * epoch_length for v in value]
            elif value is not None:
                kwargs[key] = value * epoch_length
        begin = int(begin * epoch_length)
        if end != INF:
            end = int(end * epoch_length)
        return cls(*args, begin=begin, end=end, by_epoch=False, **kwargs)  # type: ignore[misc]  # keywords only


# --------------------------------------------------------------------------------------------------------------
# chainable schedulers


class StepParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` every ``step_size`` steps."""

    _epoch_scaled = ('step_size',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, step_size: int, gamma: float = 0.1,
                 **kwargs: Any) -> None:
        self.step_size = _check_int('step_size', step_size, minimum=1)
        self.gamma = _check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0 or self.last_step % self.step_size != 0:
            return self._current()
        return [v * self.gamma for v in self._current()]

    def _get_closed_form(self) -> list[Any]:
        return [b * self.gamma ** (self.last_step // self.step_size) for b in self.base_values]


class MultiStepParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` at each milestone (relative to ``begin``; a repeated milestone applies gamma twice)."""

    _epoch_scaled = ('milestones',)

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, milestones: Sequence[int],
                 gamma: float = 0.1, **kwargs: Any) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise ValueError(f'milestones must be a list of integers, got {milestones!r}')
        counts: dict[int, int] = {}
        for m in milestones:
            m = _check_int('milestones[]', m, minimum=0)
            counts[m] = counts.get(m, 0) + 1
        # A plain dict (MMEngine keeps a Counter) so the state stays loadable with weights_only=True.
        self.milestones = counts
        self.gamma = _check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step not in self.milestones:
            return self._current()
        factor = self.gamma ** self.milestones[self.last_step]
        return [v * factor for v in self._current()]

    def _get_closed_form(self) -> list[Any]:
        passed = sorted(m for m, n in self.milestones.items() for _ in range(n))
        return [b * self.gamma ** bisect_right(passed, self.last_step) for b in self.base_values]


class ConstantParamScheduler(ParamScheduler):
    """Multiply by ``factor`` from ``begin``; restore the value at the window's last step (t = end-begin-1)."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, factor: float = 1.0 / 3,
                 **kwargs: Any) -> None:
        # factor 0 would make the restoring division impossible, so (0, 1] rather than MMEngine's [0, 1].
        if _check_number('factor', factor, 0.0, 1.0) == 0:
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

    def _get_closed_form(self) -> list[Any]:
        restored = self.last_step >= self.total_iters
        return [b * (self.factor + restored * (1 - self.factor)) for b in self.base_values]


class ExponentialParamScheduler(ParamScheduler):
    """Multiply by ``gamma`` at every step after ``begin``."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, gamma: float, **kwargs: Any) -> None:
        self.gamma = _check_number('gamma', gamma)
        super().__init__(optimizer, param_name, **kwargs)

    def _get_value(self) -> list[Any]:
        if self.last_step == 0:
            return self._current()
        return [v * self.gamma for v in self._current()]

    def _get_closed_form(self) -> list[Any]:
        return [b * self.gamma ** self.last_step for b in self.base_values]


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
        self.eta_min = None if eta_min is None else _check_number('eta_min', eta_min)
        self.eta_min_ratio = None if eta_min_ratio is None else _check_number('eta_min_ratio', eta_min_ratio)
        begin, end = _check_window(kwargs.get('begin', 0), kwargs.get('end', INF))
        self.T_max = _check_int('T_max', T_max, minimum=1) if T_max else end - begin
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

    def _get_closed_form(self) -> list[Any]:
        cos = (1 + math.cos(math.pi * self.last_step / self.T_max)) / 2
        return [self._eta_min(b) + (b - self._eta_min(b)) * cos for b in self.base_values]


class LinearParamScheduler(ParamScheduler):
    """Scale by a factor moving linearly from ``start_factor`` (at begin) to ``end_factor`` (at end-1)."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, **kwargs: Any) -> None:
        # start 0 is refused: the chainable form multiplies the current value, which could never leave 0.
        if _check_number('start_factor', start_factor, 0.0, 1.0) == 0:
            raise ValueError('start_factor must lie in (0, 1], got 0')
        self.start_factor = start_factor
        self.end_factor = _check_number('end_factor', end_factor, 0.0, 1.0)
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

    def _get_closed_form(self) -> list[Any]:
        T = self.total_iters
        frac = min(T, self.last_step) / T if T > 0 else 0.0
        return [b * (self.start_factor + (self.end_factor - self.start_factor) * frac) for b in self.base_values]


class PolyParamScheduler(ParamScheduler):
    """Polynomial decay to ``eta_min`` reached at the window's last step: ``eta + (b-eta)(1-t/T)^power``."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, eta_min: float = 0,
                 power: float = 1.0, **kwargs: Any) -> None:
        self.eta_min = _check_number('eta_min', eta_min)
        self.power = _check_number('power', power)
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

    def _get_closed_form(self) -> list[Any]:
        T = self.total_iters
        left = (1 - min(self.last_step, T) / T) ** self.power if T > 0 else 1.0
        return [self._eta_min(b) + (b - self._eta_min(b)) * left for b in self.base_values]


class PolyRatioParamScheduler(PolyParamScheduler):
    """mmseg's PolyLRRatio: PolyParamScheduler whose floor is ``base * eta_min_ratio`` when the ratio is given."""

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, eta_min_ratio: float | None = None,
                 **kwargs: Any) -> None:
        self.eta_min_ratio = None if eta_min_ratio is None else _check_number('eta_min_ratio', eta_min_ratio)
        super().__init__(optimizer, param_name, **kwargs)

    def _eta_min(self, base: float) -> float:
        # __init__ sets exactly one of eta_min / eta_min_ratio
        return self.eta_min if self.eta_min_ratio is None else base * self.eta_min_ratio  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------
# absolute (non-chainable) schedulers


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
        begin, end = _check_window(kwargs.get('begin', 0), kwargs.get('end', INF))
        if total_steps is None and end == INF:
            raise ValueError('OneCycle needs total_steps or a finite end (total_steps defaults to end - begin)')
        self.total_steps = end - begin if total_steps is None else _check_int('total_steps', total_steps, 1)
        _check_number('pct_start', pct_start, 0.0, 1.0)
        if anneal_strategy not in ('cos', 'linear'):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        self.eta_max = eta_max
        self.div_factor = _check_number('div_factor', div_factor, low=0.0)
        self.final_div_factor = _check_number('final_div_factor', final_div_factor, low=0.0)
        if div_factor == 0 or final_div_factor == 0:
            raise ValueError('div_factor and final_div_factor must be > 0')
        self._schedule_phases = self._phases(pct_start, bool(three_phase))
        groups = _groups_of(optimizer)
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
            return [_check_number('eta_max[]', v) for v in eta_max]
        return [_check_number('eta_max', eta_max)] * n_groups

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
        self.periods = [_check_int('periods[]', p, minimum=1) for p in periods]
        self.restart_weights = [_check_number('restart_weights[]', w) for w in restart_weights]
        if len(self.periods) != len(self.restart_weights):
            raise ValueError(f'periods ({len(self.periods)}) and restart_weights ({len(self.restart_weights)}) '
                             'should have the same length')
        self.eta_min = None if eta_min is None else _check_number('eta_min', eta_min)
        self.eta_min_ratio = None if eta_min_ratio is None else _check_number('eta_min_ratio', eta_min_ratio)
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

    def _get_closed_form(self) -> list[Any]:
        idx, t = self._position() or (len(self.periods) - 1, self.periods[-1] - 1)
        cos = (1 + math.cos(math.pi * t / self.periods[idx])) / 2
        weight = self.restart_weights[idx]
        return [self._eta_min(b) + (b * weight - self._eta_min(b)) * cos for b in self.base_values]


# --------------------------------------------------------------------------------------------------------------
# metric-driven scheduler


class ReduceOnPlateauParamScheduler(ParamScheduler):
    """Multiply by ``factor`` once ``monitor`` has not improved for more than ``patience`` validations.

    Epoch-based only. It does not step at construction. ``step()`` without metrics only counts epochs (the hook
    calls it after each train epoch, like every by_epoch scheduler); ``step(metrics)`` after each validation
    inside ``[begin, end)`` (counted in epochs) may reduce the value.
    """

    need_val_args = True

    def __init__(self, optimizer: SupportsParamGroups, param_name: str, monitor: str = 'loss', rule: str = 'less',
                 factor: float = 0.1, patience: int = 10, threshold: float = 1e-4, threshold_rule: str = 'rel',
                 cooldown: int = 0, min_value: float | Sequence[float] = 0.0, eps: float = 1e-8, begin: int = 0,
                 end: int = INF, last_step: int = -1, by_epoch: bool = True, verbose: bool = False) -> None:
        groups = _groups_of(optimizer)
        self.optimizer, self.param_name = optimizer, param_name
        self.begin, self.end = _check_window(begin, end)
        if not by_epoch:
            raise ValueError(f'{type(self).__name__} supports only by_epoch=True (it steps after validation)')
        self.by_epoch = True
        self._init_base_values(last_step)
        self._global_step = 0  # no construction-time step(), so counting starts at 0
        self.verbose = verbose
        if not 0 <= _check_number('factor', factor) < 1:
            raise ValueError(f'factor must lie in [0, 1), got {factor}')
        self.factor = factor
        self.min_values = self._min_values(min_value, len(groups))
        self.patience = _check_int('patience', patience, minimum=0)
        self.cooldown = _check_int('cooldown', cooldown, minimum=0)
        self.eps = _check_number('eps', eps, low=0.0)
        if _check_number('threshold', threshold) < 0:
            raise ValueError(f'threshold {threshold} should be >= 0')
        if rule not in ('less', 'greater'):
            raise ValueError(f"rule must be 'less' or 'greater', got {rule!r}")
        if threshold_rule not in ('rel', 'abs'):
            raise ValueError(f"threshold_rule must be 'rel' or 'abs', got {threshold_rule!r}")
        self.monitor, self.rule, self.threshold, self.threshold_rule = monitor, rule, threshold, threshold_rule
        # math.inf rather than MMEngine's int(1e9): a first metric above 1e9 must still count as an improvement.
        self.rule_worse = math.inf if rule == 'less' else -math.inf
        self.best = self.rule_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0
        self._last_value = self._current()

    def _min_values(self, min_value: Any, n_groups: int) -> list[Any]:
        if not isinstance(min_value, (list, tuple)):
            return [_check_number('min_value', min_value)] * n_groups
        values = [_check_number('min_value[]', v) for v in min_value]
        # A view with a pseudo base group (MMEngine's base_param_settings) takes the last real group's floor.
        if len(values) == n_groups - 1 and getattr(self.optimizer, 'base_param_settings', None) is not None:
            values.append(values[-1])
        if len(values) != n_groups:
            raise ValueError(f'expected {n_groups} min_value entries (one per param group), got {len(min_value)}')
        return values

    def _is_better(self, a: float, best: float) -> bool:
        if self.threshold_rule == 'rel':
            return a < best * (1 - self.threshold) if self.rule == 'less' else a > best * (1 + self.threshold)
        return a < best - self.threshold if self.rule == 'less' else a > best + self.threshold

    def _get_value(self) -> list[Any]:
        return [max(float(v) * self.factor, floor) for v, floor in zip(self._current(), self.min_values, strict=True)]

    def step(self, metrics: Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Without metrics: count one epoch. With metrics (after validation): update the plateau state."""
        if metrics is None:
            self._global_step += 1
            return
        if not isinstance(metrics, Mapping):
            raise TypeError(f'metrics should be a dict, got {type(metrics).__name__}')
        if self.begin <= self._global_step < self.end:
            self.last_step += 1
            if metrics.get(self.monitor) is None:
                raise KeyError(f'{type(self).__name__} monitors {self.monitor!r}, which is not among the '
                               f'validation metrics {sorted(metrics)}')
            self._observe(float(metrics[self.monitor]))
        self._last_value = self._current()

    def _observe(self, metric: float) -> None:
        if self._is_better(metric, self.best):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during cooldown do not count
        if self.num_bad_epochs > self.patience:
            for i, (group, value) in enumerate(zip(self._groups, self._get_value(), strict=True)):
                # eps: reductions too small to matter (value already at its floor) are skipped.
                if group[self.param_name] - value > self.eps:
                    self._apply_one(i, group, value)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0

    def _apply_one(self, index: int, group: dict[str, Any], value: Any) -> None:
        group[self.param_name] = value
        if self.verbose:
            logger.info('%s: %s of group %d -> %.4e', type(self).__name__, self.param_name, index, value)

    @classmethod
    def build_iter_from_epoch(cls, *args: Any, **kwargs: Any) -> ParamScheduler:
        raise ValueError(f'{cls.__name__} supports only by_epoch=True and cannot be converted to iter-based '
                         '(remove convert_to_iter_based)')


# --------------------------------------------------------------------------------------------------------------
# lr / momentum adapters


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
        groups = _groups_of(optimizer)
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


# --------------------------------------------------------------------------------------------------------------
# registry and builder

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
