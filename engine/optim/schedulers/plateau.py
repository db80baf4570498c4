"""The metric-driven scheduler: reduce a value when a validation metric stops improving (ReduceOnPlateau*)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine.optim.schedulers.base import (
    INF,
    ParamScheduler,
    SupportsParamGroups,
    check_int,
    check_number,
    check_window,
    groups_of,
    logger,
)


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
        groups = groups_of(optimizer)
        self.optimizer, self.param_name = optimizer, param_name
        self.begin, self.end = check_window(begin, end)
        if not by_epoch:
            raise ValueError(f'{type(self).__name__} supports only by_epoch=True (it steps after validation)')
        self.by_epoch = True
        self._init_base_values(last_step)
        self._global_step = 0  # no construction-time step(), so counting starts at 0
        self.verbose = verbose
        if not 0 <= check_number('factor', factor) < 1:
            raise ValueError(f'factor must lie in [0, 1), got {factor}')
        self.factor = factor
        self.min_values = self._min_values(min_value, len(groups))
        self.patience = check_int('patience', patience, minimum=0)
        self.cooldown = check_int('cooldown', cooldown, minimum=0)
        self.eps = check_number('eps', eps, low=0.0)
        if check_number('threshold', threshold) < 0:
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
            return [check_number('min_value', min_value)] * n_groups
        values = [check_number('min_value[]', v) for v in min_value]
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

