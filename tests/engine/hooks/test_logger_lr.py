"""LoggerHook's learning-rate scalars: `train/lr` is the base lr as scheduled, `train/lr/<group>` the group lrs."""

from pathlib import Path
from typing import Any

import pytest

from tests.engine.fixtures import make_cfg, make_runner

LR, LR_MULT, START, ITERS = 0.1, 0.1, 0.5, 3  # make_cfg trains SGD at lr 0.1 for 3 iterations here
WARMUP = [{"type": "LinearLR", "start_factor": START, "begin": 0, "end": ITERS}]


def _logged(runner: Any, key: str) -> list[float]:
    return [r[key] for r in runner.history if key in r]


def _factors() -> list[float]:
    """LinearLR's closed form at the step each logged iteration trained with (the logger logs every iteration)."""
    return [START + (1 - START) * t / (ITERS - 1) for t in range(ITERS)]


def test_train_lr_is_the_base_lr_when_every_parameter_merges_into_one_multiplied_group(tmp_path: Path) -> None:
    # Every UNet parameter name contains "e", so all of them share one group at lr * 0.1: MMEngine would still
    # log optim.lr as scheduled, its base_param_settings, as train/lr.
    cfg = make_cfg({"optim_wrapper": {"paramwise_cfg": {"custom_keys": {"e": {"lr_mult": LR_MULT}}}},
                    "param_scheduler": WARMUP, "train_cfg": {"max_iters": ITERS, "val_interval": ITERS}})
    runner = make_runner(cfg, tmp_path)
    assert len(runner.optim_wrapper.param_groups) == 1
    runner.train()
    assert _logged(runner, "train/lr") == pytest.approx([LR * f for f in _factors()], rel=1e-12)
    assert _logged(runner, "train/lr/0") == pytest.approx([LR * LR_MULT * f for f in _factors()], rel=1e-12)


def test_one_plain_group_logs_train_lr_only(tmp_path: Path) -> None:
    cfg = make_cfg({"param_scheduler": WARMUP, "train_cfg": {"max_iters": ITERS, "val_interval": ITERS}})
    runner = make_runner(cfg, tmp_path)
    runner.train()
    assert _logged(runner, "train/lr") == pytest.approx([LR * f for f in _factors()], rel=1e-12)
    assert not [k for r in runner.history for k in r if k.startswith("train/lr/")]
