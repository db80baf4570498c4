"""Exact-value tests for engine.optim.schedulers: closed forms, chaining, builder rules, state and errors."""

import io
import math
import random
from typing import Any, Callable, NamedTuple

import pytest
import torch

from engine.optim.schedulers import (
    INF,
    SCHEDULERS,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    OneCycleLR,
    PolyLR,
    PolyParamScheduler,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    ReduceOnPlateauParamScheduler,
    build_scheduler,
    resolve_by_epoch,
    scheduler_kwargs,
)

BEGIN, END = 5, 45  # window shared by the closed-form cases
T = END - BEGIN - 1  # last window-relative step (t = end - begin - 1)
ETA = 1e-4
REL = 1e-12


def _sgd(lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _adamw(lr: float = 6e-5) -> torch.optim.AdamW:
    return torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr, betas=(0.9, 0.999))


class _View:
    """An optimizer view like the engine's: the real groups plus a plain-dict pseudo group for the base settings."""

    def __init__(self, optimizer: torch.optim.Optimizer, pseudo: dict[str, Any]) -> None:
        self.optimizer, self.pseudo = optimizer, pseudo

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups + [self.pseudo]


def _read(optimizer: Any, kind: str, group: int = 0) -> float:
    g = optimizer.param_groups[group]
    if kind == 'betas':
        # Adam family: the scheduled momentum must be written back into betas[0] as a tuple, betas[1] untouched.
        assert isinstance(g['betas'], tuple) and g['betas'][1] == 0.999
        assert g['momentum'] == g['betas'][0]
        return g['betas'][0]
    return g[kind]


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
    optimizer = _adamw(lr=0.01) if case.kind == 'betas' else _sgd()
    base = 0.9 if case.kind == 'betas' else _read(optimizer, case.kind)
    scheduler = SCHEDULERS[case.name](optimizer, begin=BEGIN, end=case.end, by_epoch=False, **case.kwargs)
    last = case.end - BEGIN - 1
    # Every iteration is checked, so begin, end-1, end and any random iteration are pinned.
    for i in range(case.end + 4):
        expected = base if i < BEGIN else case.formula(min(i - BEGIN, last), base)
        assert _read(optimizer, case.kind) == pytest.approx(expected, rel=REL), f'iteration {i}'
        if scheduler.last_step >= 0 and hasattr(scheduler, '_get_closed_form'):
            assert scheduler._get_closed_form()[0] == pytest.approx(expected, rel=REL), f'closed form, iteration {i}'
        scheduler.step()
    assert scheduler.get_last_value() == [_read(optimizer, 'momentum' if case.kind == 'betas' else case.kind)]


# ---------------------------------------------------------------------------------------------------------------
# the two reference schedules


def _simulate(optimizer: Any, schedulers: list, n: int, key: str = 'lr') -> list[float]:
    """Value used by iteration i = value before the i-th step() after construction (MMEngine's after_train_iter)."""
    values = []
    for _ in range(n):
        values.append(optimizer.param_groups[0][key])
        for scheduler in schedulers:
            scheduler.step()
    return values


def test_seed_chain_linear_warmup_then_poly() -> None:
    optimizer, base, s = _adamw(lr=6e-5), 6e-5, 1e-6
    warmup = LinearLR(optimizer, start_factor=s, by_epoch=False, begin=0, end=1500)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(base * s, rel=REL)  # applied at build time (begin == 0)
    poly = PolyLR(optimizer, eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
    assert poly.base_values == [base]  # the first scheduler fixed initial_lr before it scaled lr
    lrs = _simulate(optimizer, [warmup, poly], 160005)

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
    optimizer = _sgd(lr=0.01)
    scheduler = PolyLR(optimizer, eta_min=1e-4, power=0.9, begin=0, end=160000, by_epoch=False)
    lrs = _simulate(optimizer, [scheduler], 160002)
    points = [0, 1, 2, 80000, 159998, 159999, 160000, 160001] + random.Random(1).sample(range(160000), 20)
    for i in points:
        expected = 1e-4 + (0.01 - 1e-4) * (1 - min(i, 159999) / 159999) ** 0.9
        assert lrs[i] == pytest.approx(expected, rel=REL), f'iteration {i}'
    assert lrs[0] == 0.01 and lrs[159999] == 1e-4 and lrs[160001] == 1e-4


def test_overlapping_schedulers_compose_multiplicatively() -> None:
    optimizer = _sgd(lr=1.0)
    slow = ExponentialLR(optimizer, gamma=0.9, by_epoch=False)
    fast = ExponentialLR(optimizer, gamma=0.5, begin=3, end=6, by_epoch=False)
    lrs = _simulate(optimizer, [slow, fast], 10)
    for i, lr in enumerate(lrs):
        halvings = min(max(i - 3, 0), 2)  # active for t = i-3 in 0..2; t=0 leaves the value alone
        assert lr == pytest.approx(0.9**i * 0.5**halvings, rel=REL)


# ---------------------------------------------------------------------------------------------------------------
# builder


def _build(cfg: dict, optimizer: Any = None, *, default_by_epoch: bool = False, epoch_length: int | None = None,
           max_end: int = 100):
    return build_scheduler(cfg, optimizer or _sgd(), default_by_epoch=default_by_epoch, epoch_length=epoch_length,
                           max_end=max_end)


def test_by_epoch_defaults_to_the_loop_kind() -> None:
    assert _build({'type': 'PolyLR'}, default_by_epoch=False).by_epoch is False
    assert _build({'type': 'PolyLR'}, default_by_epoch=True).by_epoch is True
    assert _build({'type': 'PolyLR', 'by_epoch': True}, default_by_epoch=False).by_epoch is True
    assert _build({'type': 'PolyLR', 'by_epoch': False}, default_by_epoch=True).by_epoch is False
    # ReduceOnPlateau only exists epoch-based, so an iteration loop does not turn it into an error.
    assert _build({'type': 'ReduceOnPlateauLR'}, default_by_epoch=False).by_epoch is True
    assert resolve_by_epoch({'type': 'ReduceOnPlateauLR'}, False) is True
    assert resolve_by_epoch({'type': 'PolyLR'}, False) is False


def test_end_defaults_to_max_end() -> None:
    assert _build({'type': 'PolyLR'}, max_end=1234).end == 1234
    assert _build({'type': 'PolyLR', 'end': None}, max_end=1234).end == 1234
    assert _build({'type': 'PolyLR', 'begin': 10, 'end': 50}, max_end=1234).end == 50


def test_convert_to_iter_based_scales_epoch_quantities() -> None:
    cfg = {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.1, 'begin': 1, 'end': 6,
           'convert_to_iter_based': True}
    optimizer = _sgd(lr=1.0)
    scheduler = _build(cfg, optimizer, default_by_epoch=True, epoch_length=10)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end, scheduler.milestones) == (False, 10, 60, {20: 1, 40: 1})
    lrs = _simulate(optimizer, [scheduler], 70)
    assert lrs[29] == 1.0 and lrs[30] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.01) == lrs[69]
    # end defaults to max_end in epochs, then scales like every other epoch count
    assert _build({'type': 'LinearLR', 'convert_to_iter_based': True}, default_by_epoch=True, epoch_length=7,
                  max_end=12).end == 84
    scaled = {
        'StepLR': ({'step_size': 3}, 'step_size', 30),
        'CosineAnnealingLR': ({'T_max': 4}, 'T_max', 40),
        'CosineRestartLR': ({'periods': [2, 3], 'restart_weights': [1, 1], 'eta_min': 0.0}, 'periods', [20, 30]),
        'OneCycleLR': ({'eta_max': 0.1, 'total_steps': 5}, 'total_steps', 50),
    }
    for name, (kwargs, attr, expected) in scaled.items():
        built = _build({'type': name, 'end': 5, 'convert_to_iter_based': True, **kwargs}, default_by_epoch=True,
                       epoch_length=10)
        assert getattr(built, attr) == expected and built.end == 50 and built.by_epoch is False, name


def test_scheduler_kwargs_lists_accepted_keys() -> None:
    common = {'type', 'begin', 'end', 'by_epoch', 'convert_to_iter_based', 'verbose'}
    assert scheduler_kwargs('PolyLR') == common | {'eta_min', 'power'}
    assert scheduler_kwargs('PolyLRRatio') == common | {'eta_min', 'eta_min_ratio', 'power'}
    assert scheduler_kwargs('StepMomentum') == common | {'step_size', 'gamma'}
    assert scheduler_kwargs('LinearParamScheduler') == common | {'param_name', 'start_factor', 'end_factor'}
    assert {'monitor', 'rule', 'patience', 'min_value', 'cooldown'} <= scheduler_kwargs('ReduceOnPlateauLR')


# ---------------------------------------------------------------------------------------------------------------
# groups, views, state


def test_param_groups_scale_independently_and_pseudo_group_is_scheduled() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{'params': [model.weight], 'lr': 0.1}, {'params': [model.bias]}], lr=0.01)
    view = _View(optimizer, {'lr': 0.01})  # the pseudo "base lr" group: a plain dict
    scheduler = PolyLR(view, eta_min=ETA, power=0.9, begin=0, end=21, by_epoch=False)
    for i in range(25):
        t = min(i, 20)
        assert [g['lr'] for g in view.param_groups] == pytest.approx(
            [ETA + (b - ETA) * (1 - t / 20) ** 0.9 for b in (0.1, 0.01, 0.01)], rel=REL)
        scheduler.step()
    assert view.pseudo['initial_lr'] == 0.01 and len(scheduler.get_last_value()) == 3


def test_momentum_through_a_view_over_adamw_writes_betas() -> None:
    optimizer = _adamw()
    view = _View(optimizer, {'lr': 6e-5, 'betas': (0.9, 0.999)})
    scheduler = LinearMomentum(view, start_factor=0.5, begin=0, end=11, by_epoch=False)
    for i in range(12):
        expected = 0.9 * (0.5 + 0.5 * min(i, 10) / 10)
        for group in view.param_groups:
            assert group['betas'][0] == pytest.approx(expected, rel=REL) and group['betas'][1] == 0.999
        scheduler.step()


def _chain(optimizer: Any) -> list:
    return [LinearLR(optimizer, start_factor=0.1, begin=0, end=5, by_epoch=False),
            CosineAnnealingLR(optimizer, eta_min=ETA, begin=5, end=30, by_epoch=False),
            MultiStepLR(optimizer, milestones=[8, 12], gamma=0.5, by_epoch=False),
            LinearMomentum(optimizer, start_factor=0.9, begin=0, end=20, by_epoch=False)]


def test_state_dict_round_trip_resumes_the_same_curve() -> None:
    reference = _adamw(lr=0.01)
    expected = _simulate(reference, _chain(reference), 40)

    optimizer = _adamw(lr=0.01)
    schedulers = _chain(optimizer)
    first = _simulate(optimizer, schedulers, 13)
    buffer = io.BytesIO()
    torch.save({'optimizer': optimizer.state_dict(), 'schedulers': [s.state_dict() for s in schedulers]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # the state is plain data

    resumed_optimizer = _adamw(lr=0.01)
    resumed = _chain(resumed_optimizer)  # builds (and applies t=0 values) first, as the engine does
    resumed_optimizer.load_state_dict(saved['optimizer'])
    for scheduler, state in zip(resumed, saved['schedulers'], strict=True):
        assert 'optimizer' not in state
        scheduler.load_state_dict(state)
    assert first + _simulate(resumed_optimizer, resumed, 27) == expected  # bitwise


def test_plateau_and_one_cycle_state_is_weights_only_loadable() -> None:
    optimizer = _sgd()
    states = [ReduceOnPlateauLR(optimizer).state_dict(), OneCycleLR(optimizer, eta_max=0.1, end=10).state_dict(),
              MultiStepLR(optimizer, milestones=[1, 1]).state_dict()]
    buffer = io.BytesIO()
    torch.save(states, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == states


# ---------------------------------------------------------------------------------------------------------------
# ReduceOnPlateau


def test_reduce_on_plateau_sequence() -> None:
    optimizer = _sgd(lr=0.01)
    scheduler = ReduceOnPlateauLR(optimizer, patience=1, factor=0.5, cooldown=1, min_value=0.002)
    assert optimizer.param_groups[0]['lr'] == 0.01 and scheduler._global_step == 0  # no step at construction
    losses = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    lrs = []
    for loss in losses:
        scheduler.step()  # after the train epoch: counts it
        scheduler.step({'loss': torch.tensor(loss), 'mIoU': 0.3})  # after validation
        lrs.append(optimizer.param_groups[0]['lr'])
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.005, 0.0025, 0.0025, 0.0025,
                                 0.002, 0.002, 0.002, 0.002], rel=REL)


def test_reduce_on_plateau_greater_abs_window_and_momentum() -> None:
    optimizer = _sgd()
    scheduler = ReduceOnPlateauMomentum(optimizer, monitor='mIoU', rule='greater', threshold=0.05,
                                        threshold_rule='abs', patience=0, factor=0.5, begin=2)
    momenta = []
    for miou in [0.1, 0.1, 0.3, 0.32, 0.4, 0.44]:
        scheduler.step()
        scheduler.step({'mIoU': miou})
        momenta.append(optimizer.param_groups[0]['momentum'])
    # epochs 1 is before begin=2 (ignored); then: best .1, .3 better, .32 not (+.05 needed), .4 better, .44 not
    assert momenta == pytest.approx([0.9, 0.9, 0.9, 0.45, 0.45, 0.225], rel=REL)
    with pytest.raises(KeyError, match="monitors 'mIoU'"):
        scheduler.step({'loss': 1.0})


# ---------------------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(('cfg', 'match'), [
    ({'type': 'PloyLR'}, "did you mean 'PolyLR'"),
    ({'begin': 0}, 'needs a type key'),
    ({'type': 'StepLR', 'step_size': 2, 'gama': 0.5}, "unknown key 'gama' \\(did you mean 'gamma'\\?\\)"),
    ({'type': 'StepLR'}, "missing required key 'step_size'"),
    ({'type': 'LinearLR', 'param_name': 'lr'}, "unknown key 'param_name'"),
    ({'type': 'LinearLR', 'last_step': 3}, "unknown key 'last_step'"),
    ({'type': 'PolyLR', 'begin': 10, 'end': 10}, 'end should be larger than begin'),
    ({'type': 'PolyLR', 'begin': 1.5}, 'begin must be an integer'),
    ({'type': 'PolyLR', 'by_epoch': 'yes'}, 'by_epoch must be true or false'),
    ({'type': 'LinearLR', 'start_factor': 1.5}, 'start_factor must lie in'),
    ({'type': 'LinearLR', 'start_factor': 0}, 'start_factor must lie in \\(0, 1\\]'),
    ({'type': 'ConstantLR', 'factor': -0.1}, 'factor must lie in'),
    ({'type': 'CosineRestartLR', 'periods': [5]}, 'exactly one of eta_min or eta_min_ratio'),
    ({'type': 'CosineRestartLR', 'periods': [5, 5], 'eta_min': 0}, 'same length'),
    ({'type': 'CosineAnnealingLR', 'eta_min': 0, 'eta_min_ratio': 0.1}, 'not both'),
    ({'type': 'ReduceOnPlateauLR', 'by_epoch': False}, 'supports only by_epoch=True'),
    ({'type': 'ReduceOnPlateauLR', 'factor': 1.0}, 'factor must lie in \\[0, 1\\)'),
    ({'type': 'ReduceOnPlateauLR', 'rule': 'max'}, "rule must be 'less' or 'greater'"),
    ({'type': 'ReduceOnPlateauLR', 'min_value': [0, 0, 0]}, 'expected 1 min_value entries'),
    ({'type': 'OneCycleParamScheduler', 'param_name': 'momentum'}, 'only schedules the learning rate'),
    ({'type': 'OneCycleLR', 'eta_max': 0.1, 'total_steps': 10}, 'total_steps=10 is shorter than the window'),
    ({'type': 'OneCycleLR', 'anneal_strategy': 'cosine'}, "anneal_strategy must be 'cos' or 'linear'"),
    ({'type': 'PolyLR', 'by_epoch': False, 'convert_to_iter_based': True}, 'needs by_epoch: true'),
    ({'type': 'PolyLR', 'by_epoch': True, 'convert_to_iter_based': True}, 'needs the epoch length'),
    ({'type': 'ReduceOnPlateauLR', 'convert_to_iter_based': True}, 'cannot be converted to iter-based'),
])
def test_bad_config_raises_value_error(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _build(cfg, epoch_length=10 if cfg.get('type') == 'ReduceOnPlateauLR' else None)


def test_runtime_errors() -> None:
    with pytest.raises(ValueError, match='optimizer must support momentum'):
        LinearMomentum(torch.optim.Adagrad(torch.nn.Linear(2, 2).parameters()))
    with pytest.raises(ValueError, match="has no 'weight_decay'"):
        PolyParamScheduler(_View(_sgd(), {'lr': 0.01}), 'weight_decay')
    with pytest.raises(TypeError, match='param_groups'):
        PolyLR(object())
    # OneCycle used directly with a window longer than total_steps fails at the step past it, as in MMEngine.
    optimizer = _sgd()
    scheduler = OneCycleLR(optimizer, eta_max=0.1, total_steps=3, end=INF)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match='Tried to step 5 times'):
        scheduler.step()
    with pytest.raises(ValueError, match='schedules'):
        PolyLR(_sgd()).load_state_dict(ReduceOnPlateauParamScheduler(_sgd(), 'momentum').state_dict())
