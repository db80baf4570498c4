"""Closed-form values of the chainable schedulers, computed from a built scheduler's state: an oracle the exact-value
tests compare the recursive (engine) forms against."""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any

from engine.optim.schedulers import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    CosineRestartParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    ParamScheduler,
    PolyParamScheduler,
    StepParamScheduler,
)


def _step(s: Any) -> list[float]:
    return [b * s.gamma ** (s.last_step // s.step_size) for b in s.base_values]


def _multi_step(s: Any) -> list[float]:
    passed = sorted(m for m, n in s.milestones.items() for _ in range(n))
    return [b * s.gamma ** bisect_right(passed, s.last_step) for b in s.base_values]


def _constant(s: Any) -> list[float]:
    restored = s.last_step >= s.total_iters
    return [b * (s.factor + restored * (1 - s.factor)) for b in s.base_values]


def _exponential(s: Any) -> list[float]:
    return [b * s.gamma ** s.last_step for b in s.base_values]


def _cosine(s: Any) -> list[float]:
    cos = (1 + math.cos(math.pi * s.last_step / s.T_max)) / 2
    return [s._eta_min(b) + (b - s._eta_min(b)) * cos for b in s.base_values]


def _linear(s: Any) -> list[float]:
    T = s.total_iters
    frac = min(T, s.last_step) / T if T > 0 else 0.0
    return [b * (s.start_factor + (s.end_factor - s.start_factor) * frac) for b in s.base_values]


def _poly(s: Any) -> list[float]:
    # PolyRatio is a PolyParamScheduler: its _eta_min gives base * eta_min_ratio.
    T = s.total_iters
    left = (1 - min(s.last_step, T) / T) ** s.power if T > 0 else 1.0
    return [s._eta_min(b) + (b - s._eta_min(b)) * left for b in s.base_values]


def _restart(s: Any) -> list[float]:
    idx, t = s._position() or (len(s.periods) - 1, s.periods[-1] - 1)
    cos = (1 + math.cos(math.pi * t / s.periods[idx])) / 2
    weight = s.restart_weights[idx]
    return [s._eta_min(b) + (b * weight - s._eta_min(b)) * cos for b in s.base_values]


_FORMS = (
    (StepParamScheduler, _step), (MultiStepParamScheduler, _multi_step), (ConstantParamScheduler, _constant),
    (ExponentialParamScheduler, _exponential), (CosineAnnealingParamScheduler, _cosine),
    (LinearParamScheduler, _linear), (PolyParamScheduler, _poly), (CosineRestartParamScheduler, _restart),
)


def closed_form(scheduler: ParamScheduler) -> list[float] | None:
    """Each group's value at the scheduler's ``last_step`` from its base values; None for the schedulers without one
    (OneCycle writes absolute values, ReduceOnPlateau depends on the metrics)."""
    for cls, form in _FORMS:
        if isinstance(scheduler, cls):
            return form(scheduler)
    return None
