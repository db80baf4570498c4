"""The scheduler base class: MMEngine's window, initial-value bookkeeping, stepping and state, plus argument checks.

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
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

logger = logging.getLogger('engine.optim.schedulers')

# MMEngine's "no end". An int (not math.inf) so begin/end arithmetic and checkpointed state stay integral.
INF = int(1e9)


class SchedulerArgError(ValueError):
    """A refused argument value whose entry key is known, so callers can say ``param_scheduler.N.<key>``."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class SupportsParamGroups(Protocol):
    """Anything with torch-style ``param_groups``: a torch optimizer or a view adding a pseudo group."""

    param_groups: list[dict[str, Any]]


# --------------------------------------------------------------------------------------------------------------
# argument checks (ValueError: these values come from params.yaml)


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (integral floats accepted), at least ``minimum``; ValueError naming ``name`` otherwise."""
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


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None) -> Any:
    """``value`` if it is a number (not a bool) in ``[low, high]``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number, got {value!r}')
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f'{name} must lie in [{low}, {high}], got {value}')
    return value


def check_window(begin: Any, end: Any) -> tuple[int, int]:
    """(begin, end) as ints with ``0 <= begin < end``; ``end: .inf`` means no end (INF)."""
    begin = check_int('begin', begin, minimum=0)
    if isinstance(end, float) and end == math.inf:
        end = INF
    end = check_int('end', end)
    if end <= begin:
        raise ValueError(f'end should be larger than begin, but got begin={begin}, end={end}')
    return begin, end


def groups_of(optimizer: Any) -> list[dict[str, Any]]:
    """The optimizer's ``param_groups``, or TypeError when it has no list of dicts."""
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
        groups_of(optimizer)
        self.optimizer = optimizer
        self.param_name = param_name
        self.begin, self.end = check_window(begin, end)
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
