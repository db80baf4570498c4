"""The builder of one param_scheduler entry: by_epoch and end defaults, conversion, accepted keys, errors."""

import pytest

from engine.optim.schedulers import (
    SchedulerArgError,
    entry_problem,
    resolve_by_epoch,
    scheduler_kwargs,
    training_end,
)
from tests.engine.optim.schedulers.helpers import build, sgd, simulate

# ---------------------------------------------------------------------------------------------------------------
# builder


def test_by_epoch_defaults_to_the_loop_kind() -> None:
    assert build({'type': 'PolyLR'}, default_by_epoch=False).by_epoch is False
    assert build({'type': 'PolyLR'}, default_by_epoch=True).by_epoch is True
    assert build({'type': 'PolyLR', 'by_epoch': True}, default_by_epoch=False).by_epoch is True
    assert build({'type': 'PolyLR', 'by_epoch': False}, default_by_epoch=True).by_epoch is False
    # ReduceOnPlateau only exists epoch-based, so an iteration loop does not turn it into an error.
    assert build({'type': 'ReduceOnPlateauLR'}, default_by_epoch=False).by_epoch is True
    assert resolve_by_epoch({'type': 'ReduceOnPlateauLR'}, False) is True
    assert resolve_by_epoch({'type': 'PolyLR'}, False) is False


def test_end_defaults_to_max_end() -> None:
    assert build({'type': 'PolyLR'}, max_end=1234).end == 1234
    assert build({'type': 'PolyLR', 'end': None}, max_end=1234).end == 1234
    assert build({'type': 'PolyLR', 'begin': 10, 'end': 50}, max_end=1234).end == 50


def test_convert_to_iter_based_scales_epoch_quantities() -> None:
    cfg = {'type': 'MultiStepLR', 'milestones': [2, 4], 'gamma': 0.1, 'begin': 1, 'end': 6,
           'convert_to_iter_based': True}
    optimizer = sgd(lr=1.0)
    scheduler = build(cfg, optimizer, default_by_epoch=True, epoch_length=10)
    assert (scheduler.by_epoch, scheduler.begin, scheduler.end, scheduler.milestones) == (False, 10, 60, {20: 1, 40: 1})
    lrs = simulate(optimizer, [scheduler], 70)
    assert lrs[29] == 1.0 and lrs[30] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.01) == lrs[69]
    # end defaults to max_end in epochs, then scales like every other epoch count
    assert build({'type': 'LinearLR', 'convert_to_iter_based': True}, default_by_epoch=True, epoch_length=7,
                  max_end=12).end == 84
    scaled = {
        'StepLR': ({'step_size': 3}, 'step_size', 30),
        'CosineAnnealingLR': ({'T_max': 4}, 'T_max', 40),
        'CosineRestartLR': ({'periods': [2, 3], 'restart_weights': [1, 1], 'eta_min': 0.0}, 'periods', [20, 30]),
        'OneCycleLR': ({'eta_max': 0.1, 'total_steps': 5}, 'total_steps', 50),
    }
    for name, (kwargs, attr, expected) in scaled.items():
        built = build({'type': name, 'end': 5, 'convert_to_iter_based': True, **kwargs}, default_by_epoch=True,
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
        build(cfg, epoch_length=10 if cfg.get('type') == 'ReduceOnPlateauLR' else None)



# ---------------------------------------------------------------------------------------------------------------
# the end of training, the default end


ITER_LOOP = {'type': 'IterBasedTrainLoop', 'max_iters': 600, 'max_epochs': None}
EPOCH_LOOP = {'type': 'EpochBasedTrainLoop', 'max_iters': None, 'max_epochs': 4}


def test_training_end_in_each_unit() -> None:
    assert training_end(ITER_LOOP, by_epoch=False, epoch_length=None) == 600
    assert training_end(ITER_LOOP, by_epoch=True, epoch_length=63) == 10  # ceil(600 / 63)
    assert training_end(ITER_LOOP, by_epoch=True, epoch_length=60) == 10
    assert training_end(ITER_LOOP, by_epoch=True, epoch_length=None) is None
    assert training_end(EPOCH_LOOP, by_epoch=True, epoch_length=None) == 4
    assert training_end(EPOCH_LOOP, by_epoch=False, epoch_length=63) == 252
    assert training_end(EPOCH_LOOP, by_epoch=False, epoch_length=None) is None


def test_converted_default_end_is_the_run_in_whole_epochs_then_scaled() -> None:
    max_end = training_end(ITER_LOOP, by_epoch=True, epoch_length=63)
    scheduler = build({'type': 'LinearLR', 'by_epoch': True, 'convert_to_iter_based': True}, epoch_length=63,
                      max_end=max_end)
    assert (scheduler.begin, scheduler.end, scheduler.by_epoch) == (0, 630, False)


def test_missing_end_with_an_unknown_end_of_training() -> None:
    with pytest.raises(ValueError, match='end is not set'):
        build({'type': 'LinearLR', 'by_epoch': False}, max_end=None)


def test_one_cycle_window_error_names_its_key() -> None:
    with pytest.raises(SchedulerArgError) as info:
        build({'type': 'OneCycleLR', 'eta_max': 0.1, 'total_steps': 3, 'end': 4, 'convert_to_iter_based': True},
              default_by_epoch=True, epoch_length=5)
    assert info.value.key == 'total_steps'
    assert entry_problem('param_scheduler.2', info.value) == (
        'param_scheduler.2.total_steps: OneCycleLR: total_steps=3 epochs = 15 iterations (convert_to_iter_based, 5 '
        'per epoch) is shorter than the window [0, 20); it would fail at step 16. Raise total_steps or lower end')
    assert entry_problem('param_scheduler.2', ValueError('x')) == 'param_scheduler.2: x'
