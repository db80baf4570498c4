"""Mixed precision on CUDA: fp16 with dynamic or fixed loss scaling and bf16 train the example without NaN.

These run only where a CUDA device exists (marker `gpu`); on CPU the fp16 refusal and bf16 autocast are covered in
test_wrapper.py.
"""

import math
from pathlib import Path

import pytest
import torch

from tests.engine.fixtures import make_cfg, make_runner

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize(
    ("dtype", "loss_scale"),
    [("float16", "dynamic"), ("float16", 512.0), ("float16", {"init_scale": 1024.0, "growth_interval": 5}),
     ("bfloat16", "dynamic")],
)
def test_mixed_precision_trains_without_nan(tmp_path: Path, dtype: str, loss_scale) -> None:
    cfg = make_cfg({"optim_wrapper": {"type": "AmpOptimWrapper", "dtype": dtype, "loss_scale": loss_scale},
                    "optim": {"_delete_": True, "type": "AdamW", "lr": 0.003}}, max_iters=20)
    runner = make_runner(cfg, tmp_path)
    runner.train()
    assert runner.accelerator.mixed_precision == {"float16": "fp16", "bfloat16": "bf16"}[dtype]
    losses = [r["train/loss"] for r in runner.history if "train/loss" in r]
    assert len(losses) == 20 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    scaler = runner.accelerator.scaler
    if dtype == "float16":
        assert scaler is not None
        if isinstance(loss_scale, float):  # a fixed scale stays where it was set
            assert scaler.get_scale() == loss_scale
    else:
        assert scaler is None  # bf16 needs no loss scaling
