"""Schedulers over param groups and views, their state round trip, ReduceOnPlateau and runtime errors."""

import io
from typing import Any

import pytest
import torch

from engine.optim.schedulers import (
    INF,
    CosineAnnealingLR,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    OneCycleLR,
    PolyLR,
    PolyParamScheduler,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    ReduceOnPlateauParamScheduler,
)
from tests.engine.optim.schedulers.helpers import ETA, REL, View, adamw, sgd, simulate

# ---------------------------------------------------------------------------------------------------------------
# groups, views, state


def test_param_groups_scale_independently_and_pseudo_group_is_scheduled() -> None:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD([{'params': [model.weight], 'lr': 0.1}, {'params': [model.bias]}], lr=0.01)
    view = View(optimizer, {'lr': 0.01})  # the pseudo "base lr" group: a plain dict
    scheduler = PolyLR(view, eta_min=ETA, power=0.9, begin=0, end=21, by_epoch=False)
    for i in range(25):
        t = min(i, 20)
        assert [g['lr'] for g in view.param_groups] == pytest.approx(
            [ETA + (b - ETA) * (1 - t / 20) ** 0.9 for b in (0.1, 0.01, 0.01)], rel=REL)
        scheduler.step()
    assert view.pseudo['initial_lr'] == 0.01 and len(scheduler.get_last_value()) == 3


def test_momentum_through_a_view_over_adamw_writes_betas() -> None:
    optimizer = adamw()
    view = View(optimizer, {'lr': 6e-5, 'betas': (0.9, 0.999)})
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
    reference = adamw(lr=0.01)
    expected = simulate(reference, _chain(reference), 40)

    optimizer = adamw(lr=0.01)
    schedulers = _chain(optimizer)
    first = simulate(optimizer, schedulers, 13)
    buffer = io.BytesIO()
    torch.save({'optimizer': optimizer.state_dict(), 'schedulers': [s.state_dict() for s in schedulers]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # the state is plain data

    resumed_optimizer = adamw(lr=0.01)
    resumed = _chain(resumed_optimizer)  # builds (and applies t=0 values) first, as the engine does
    resumed_optimizer.load_state_dict(saved['optimizer'])
    for scheduler, state in zip(resumed, saved['schedulers'], strict=True):
        assert 'optimizer' not in state
        scheduler.load_state_dict(state)
    assert first + simulate(resumed_optimizer, resumed, 27) == expected  # bitwise


def test_plateau_and_one_cycle_state_is_weights_only_loadable() -> None:
    optimizer = sgd()
    states = [ReduceOnPlateauLR(optimizer).state_dict(), OneCycleLR(optimizer, eta_max=0.1, end=10).state_dict(),
              MultiStepLR(optimizer, milestones=[1, 1]).state_dict()]
    buffer = io.BytesIO()
    torch.save(states, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=True) == states


# ---------------------------------------------------------------------------------------------------------------
# ReduceOnPlateau


def test_reduce_on_plateau_sequence() -> None:
    optimizer = sgd(lr=0.01)
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
    optimizer = sgd()
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



def test_runtime_errors() -> None:
    with pytest.raises(ValueError, match='optimizer must support momentum'):
        LinearMomentum(torch.optim.Adagrad(torch.nn.Linear(2, 2).parameters()))
    with pytest.raises(ValueError, match="has no 'weight_decay'"):
        PolyParamScheduler(View(sgd(), {'lr': 0.01}), 'weight_decay')
    with pytest.raises(TypeError, match='param_groups'):
        PolyLR(object())
    # OneCycle used directly with a window longer than total_steps fails at the step past it, as in MMEngine.
    optimizer = sgd()
    scheduler = OneCycleLR(optimizer, eta_max=0.1, total_steps=3, end=INF)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match='Tried to step 5 times'):
        scheduler.step()
    with pytest.raises(ValueError, match='schedules'):
        PolyLR(sgd()).load_state_dict(ReduceOnPlateauParamScheduler(sgd(), 'momentum').state_dict())

