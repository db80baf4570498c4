"""Parameter schedulers (lr, momentum, any param-group value) with MMEngine's exact stepping semantics.

The package re-exports every public name, so ``from engine.optim.schedulers import build_scheduler, LinearLR``
works whichever module a name lives in: ``base`` (the contract), ``chainable``, ``one_cycle``, ``cosine_restart``,
``plateau`` (the families), ``aliases`` (lr/momentum by name) and ``build`` (registry and builder).
"""

from engine.optim.schedulers.aliases import (
    ConstantLR,
    ConstantMomentum,
    CosineAnnealingLR,
    CosineAnnealingMomentum,
    CosineRestartLR,
    CosineRestartMomentum,
    ExponentialLR,
    ExponentialMomentum,
    LinearLR,
    LinearMomentum,
    MultiStepLR,
    MultiStepMomentum,
    OneCycleLR,
    PolyLR,
    PolyLRRatio,
    PolyMomentum,
    ReduceOnPlateauLR,
    ReduceOnPlateauMomentum,
    StepLR,
    StepMomentum,
)
from engine.optim.schedulers.base import INF, ParamScheduler, SchedulerArgError, SupportsParamGroups
from engine.optim.schedulers.build import (
    SCHEDULERS,
    build_scheduler,
    entry_problem,
    resolve_by_epoch,
    scheduler_kwargs,
    training_end,
)
from engine.optim.schedulers.chainable import (
    ConstantParamScheduler,
    CosineAnnealingParamScheduler,
    ExponentialParamScheduler,
    LinearParamScheduler,
    MultiStepParamScheduler,
    PolyParamScheduler,
    PolyRatioParamScheduler,
    StepParamScheduler,
)
from engine.optim.schedulers.cosine_restart import CosineRestartParamScheduler
from engine.optim.schedulers.one_cycle import OneCycleParamScheduler
from engine.optim.schedulers.plateau import ReduceOnPlateauParamScheduler

__all__ = [
    "INF", "SCHEDULERS", "ParamScheduler", "SchedulerArgError", "SupportsParamGroups", "build_scheduler",
    "entry_problem", "resolve_by_epoch", "scheduler_kwargs", "training_end",
    "ConstantParamScheduler", "CosineAnnealingParamScheduler", "CosineRestartParamScheduler",
    "ExponentialParamScheduler", "LinearParamScheduler", "MultiStepParamScheduler", "OneCycleParamScheduler",
    "PolyParamScheduler", "PolyRatioParamScheduler", "ReduceOnPlateauParamScheduler", "StepParamScheduler",
    "ConstantLR", "CosineAnnealingLR", "CosineRestartLR", "ExponentialLR", "LinearLR", "MultiStepLR", "OneCycleLR",
    "PolyLR", "PolyLRRatio", "ReduceOnPlateauLR", "StepLR",
    "ConstantMomentum", "CosineAnnealingMomentum", "CosineRestartMomentum", "ExponentialMomentum", "LinearMomentum",
    "MultiStepMomentum", "PolyMomentum", "ReduceOnPlateauMomentum", "StepMomentum",
]
