"""Exact values of every scheduler family against closed forms, and the reference schedules (chaining)."""

import math
import random
from typing import Any, Callable, NamedTuple

import pytest

from engine.optim.schedulers import SCHEDULERS, ExponentialLR, LinearLR, PolyLR
from tests.engine.optim.schedulers.closed_forms import closed_form
from tests.engine.optim.schedulers.helpers import ETA, REL, adamw, read, sgd, simulate

BEGIN, END = 5, 45  # window shared by the closed-form cases
T = END - BEGIN - 1  # last window-relative step (t = end - begin - 1)


# ---------------------------------------------------------------------------------------------------------------
# closed forms, written independently of the module: value at window-relative step t from base value b


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


def _lin(start: float, end: float, pct: float) -> float:
    return start + (end - start) * pct


def _restart(t: int, b: float) -> float:
    t = min(t, 29)  # periods [10, 20]: after step 29 the value holds
    weight, period, s = (1.0, 10, t) if t < 10 else (0.5, 20, t - 10)
    return ETA + (b * weight - ETA) * (1 + math.cos(math.pi * s / period)) / 2


def _one_cycle(t: int, b: float) -> float:
    peak = 0.1
    initial = peak / 25
    up = 0.3 * 40 - 1  # total_steps defaults to end - begin = 40
    if t <= up:
        return _cos(initial, peak, t / up)
    return _cos(peak, initial / 1e4, (t - up) / (40 - 1 - up))


def _one_cycle_three_linear(t: int, b: float) -> float:
    peak, initial = 0.05, 0.05 / 10
    if t <= 5:  # 0.25 * 24 - 1
        return _lin(initial, peak, t / 5)
    if t <= 10:  # 2 * 0.25 * 24 - 2
        return _lin(peak, initial, (t - 5) / 5)
    return _lin(initial, initial / 100, (t - 10) / (23 - 10))


FAMILIES: dict[str, tuple[dict[str, Any], Callable[[int, float], float]]] = {
    'Linear': ({'start_factor': 0.25, 'end_factor': 0.75}, lambda t, b: b * (0.25 + 0.5 * t / T)),
    'Constant': ({'factor': 0.5}, lambda t, b: b * 0.5 if t < T else b),
    'Poly': ({'eta_min': ETA, 'power': 0.9}, lambda t, b: ETA + (b - ETA) * (1 - t / T) ** 0.9),
    'CosineAnnealing': ({'eta_min': ETA}, lambda t, b: ETA + (b - ETA) * (1 + math.cos(math.pi * t / 40)) / 2),
    'MultiStep': ({'milestones': [3, 10, 10, 20], 'gamma': 0.5},
                  lambda t, b: b * 0.5 ** sum(m <= t for m in (3, 10, 10, 20))),
    'Step': ({'step_size': 7, 'gamma': 0.5}, lambda t, b: b * 0.5 ** (t // 7)),
    'Exponential': ({'gamma': 0.9}, lambda t, b: b * 0.9**t),
    'CosineRestart': ({'periods': [10, 20], 'restart_weights': [1.0, 0.5], 'eta_min': ETA}, _restart),
}


class Case(NamedTuple):
    name: str
    kwargs: dict[str, Any]
    formula: Callable[[int, float], float]
    kind: str  # which value is scheduled: lr / momentum (SGD) / betas (AdamW betas[0]) / weight_decay
    end: int = END


def _cases() -> list[Case]:
    cases = []
    for family, (kwargs, formula) in FAMILIES.items():
        cases.append(Case(f'{family}LR', kwargs, formula, 'lr'))
        cases.append(Case(f'{family}Momentum', kwargs, formula, 'momentum'))
        cases.append(Case(f'{family}Momentum', kwargs, formula, 'betas'))
        cases.append(Case(f'{family}ParamScheduler', {'param_name': 'weight_decay', **kwargs}, formula, 'weight_decay'))
    cases += [
        Case('PolyLRRatio', {'eta_min_ratio': 0.01, 'power': 2.0},
             lambda t, b: b * 0.01 + (b - b * 0.01) * (1 - t / T) ** 2.0, 'lr'),
        Case('CosineAnnealingLR', {'T_max': 10, 'eta_min': ETA},  # runs past the trough at t=10 and t=30
             lambda t, b: ETA + (b - ETA) * (1 + math.cos(math.pi * t / 10)) / 2, 'lr'),
        Case('CosineAnnealingLR', {'eta_min_ratio': 0.1},
             lambda t, b: 0.1 * b + 0.9 * b * (1 + math.cos(math.pi * t / 40)) / 2, 'lr'),
        Case('CosineRestartLR', {'periods': [10, 20], 'restart_weights': [1.0, 0.5], 'eta_min_ratio': ETA / 0.01},
             _restart, 'lr'),
        Case('OneCycleLR', {'eta_max': 0.1}, _one_cycle, 'lr'),
        Case('OneCycleParamScheduler', {'param_name': 'lr', 'eta_max': 0.1}, _one_cycle, 'lr'),
        Case('OneCycleLR', {'eta_max': 0.05, 'total_steps': 24, 'pct_start': 0.25, 'three_phase': True,
                            'anneal_strategy': 'linear', 'div_factor': 10, 'final_div_factor': 100},
             _one_cycle_three_linear, 'lr', end=BEGIN + 24),
    ]
    return cases


CASES = _cases()


def test_every_registered_scheduler_has_a_closed_form_case() -> None:
    plateau = {name for name, cls in SCHEDULERS.items() if cls.need_val_args}
    assert {case.name for case in CASES} | plateau == set(SCHEDULERS)
    assert plateau == {'ReduceOnPlateauLR', 'ReduceOnPlateauMomentum', 'ReduceOnPlateauParamScheduler'}


@pytest.mark.parametrize('case', CASES, ids=[f'{c.name}-{c.kind}-{i}' for i, c in enumerate(CASES)])
def test_values_match_closed_form(case: Case) -> None:
    optimizer = adamw(lr=0.01) if case.kind == 'betas' else sgd()
    base = 0.9 if case.kind == 'betas' else read(optimizer, case.kind)
    scheduler = SCHEDULERS[case.name](optimizer, begin=BEGIN, end=case.end, by_epoch=False, **case.kwargs)
    last = case.end - BEGIN - 1
    # Every iteration is checked, so begin, end-1, end and any random iteration are pinned.
    for i in range(case.end + 4):
        expected = base if i < BEGIN else case.formula(min(i - BEGIN, last), base)
        assert read(optimizer, case.kind) == pytest.approx(expected, rel=REL), f'iteration {i}'
        oracle = closed_form(scheduler) if scheduler.last_step >= 0 else None
        if oracle is not None:
            assert oracle[0] == pytest.approx(expected, rel=REL), f'closed form, iteration {i}'
        scheduler.step()
    assert scheduler.get_last_value() == [read(optimizer, 'momentum' if case.kind == 'betas' else case.kind)]


# ---------------------------------------------------------------------------------------------------------------
# the two reference schedules


def test_seed_chain_linear_warmup_then_poly() -> None:
    optimizer, base, s = adamw(lr=6e-5), 6e-5, 1e-6
    warmup = LinearLR(optimizer, start_factor=s, by_epoch=False, begin=0, end=1500)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(base * s, rel=REL)  # applied at build time (begin == 0)
    poly = PolyLR(optimizer, eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
    assert poly.base_values == [base]  # the first scheduler fixed initial_lr before it scaled lr
    lrs = simulate(optimizer, [warmup, poly], 160005)

    def expected(i: int) -> float:
        if i < 1500:
            return base * (s + (1 - s) * i / 1499)
        b_1500 = base  # LinearLR ends at end_factor 1.0, so PolyLR starts from the base lr
        return 0.0 + (b_1500 - 0.0) * (1 - min(i - 1500, 158499) / 158499) ** 1.0

    points = [0, 1, 749, 1499, 1500, 1501, 80000, 159998, 159999, 160000, 160004]
    points += random.Random(0).sample(range(160000), 20)
    for i in points:
        # abs bound is 1e-12 of the base lr: the recursive form's error near the (tiny) tail of the curve.
        assert lrs[i] == pytest.approx(expected(i), rel=REL, abs=REL * base), f'iteration {i}'
    assert lrs[1499] == pytest.approx(base, rel=REL) and lrs[1500] == pytest.approx(base, rel=REL)
    assert lrs[159999] == 0.0 and lrs[160004] == 0.0


def test_mmseg_160k_poly_schedule() -> None:
    optimizer = sgd(lr=0.01)
    scheduler = PolyLR(optimizer, eta_min=1e-4, power=0.9, begin=0, end=160000, by_epoch=False)
    lrs = simulate(optimizer, [scheduler], 160002)
    points = [0, 1, 2, 80000, 159998, 159999, 160000, 160001] + random.Random(1).sample(range(160000), 20)
    for i in points:
        expected = 1e-4 + (0.01 - 1e-4) * (1 - min(i, 159999) / 159999) ** 0.9
        assert lrs[i] == pytest.approx(expected, rel=REL), f'iteration {i}'
    assert lrs[0] == 0.01 and lrs[159999] == 1e-4 and lrs[160001] == 1e-4


def test_overlapping_schedulers_compose_multiplicatively() -> None:
    optimizer = sgd(lr=1.0)
    slow = ExponentialLR(optimizer, gamma=0.9, by_epoch=False)
    fast = ExponentialLR(optimizer, gamma=0.5, begin=3, end=6, by_epoch=False)
    lrs = simulate(optimizer, [slow, fast], 10)
    for i, lr in enumerate(lrs):
        halvings = min(max(i - 3, 0), 2)  # active for t = i-3 in 0..2; t=0 leaves the value alone
        assert lr == pytest.approx(0.9**i * 0.5**halvings, rel=REL)

