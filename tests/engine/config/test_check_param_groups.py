"""`trainline check` refuses param groups the model cannot take, as the build would: layer-wise decay on a model
without layers, too few `num_layers`, tied parameters without `bypass_duplicate`; one `error:` line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from engine.cli import main
from engine.config import dump_yaml
from engine.config.validate import check_params
from engine.errors import UserError
from tests.conftest import apply_overrides, shipped_params
from tests.engine.config.test_check_implies_build import TOYS, _toy_params
from tests.engine.fixtures import dataset_root, reset_accelerate

LAYER_DECAY = {"constructor": "LearningRateDecayOptimizerConstructor",
               "paramwise_cfg": {"num_layers": 2, "decay_rate": 0.9}}


@pytest.fixture
def toys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy projects importable as `digits.*` / `tokens.*`, with their data under tmp_path."""
    monkeypatch.syspath_prepend(str(TOYS))
    return tmp_path


def _check(params: dict[str, Any], tmp_path: Path) -> list[str]:
    """`trainline check` on `params`: exit 2 without a traceback; returns its error lines."""
    path = tmp_path / "p.yaml"
    path.write_text(dump_yaml(params), encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--params", str(path)])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    return result.stderr.splitlines()


def _tied_lm(toys: Path, paramwise_cfg: dict[str, Any]) -> dict[str, Any]:
    """The tokens toy's params with its embedding and head tied (one Parameter in two modules)."""
    return apply_overrides(_toy_params(toys, "tokens"), {"model": {"tie_weights": True},
                                                          "optim_wrapper": {"paramwise_cfg": paramwise_cfg}})


def test_layer_decay_on_a_model_without_a_layered_backbone(toys: Path) -> None:
    params = apply_overrides(_toy_params(toys, "digits"), {"optim_wrapper": LAYER_DECAY})
    assert _check(params, toys) == [
        "error: optim_wrapper.constructor: LearningRateDecayOptimizerConstructor needs a model with a `backbone` "
        "submodule; Net has none. Use a ViT- or ConvNeXt-style model (ViTSegmenter, ConvNeXtSegmenter) or remove "
        "the constructor"]


def test_layer_decay_with_too_few_num_layers(tmp_path: Path) -> None:
    params = shipped_params()
    params["data"]["root"] = str(dataset_root())
    params = apply_overrides(params, {
        "model": {"_delete_": True, "type": "ViTSegmenter", "embed_dims": 32, "num_layers": 4, "num_heads": 2},
        "optim_wrapper": LAYER_DECAY})
    assert _check(params, tmp_path) == [
        "error: optim_wrapper.paramwise_cfg.num_layers: 2 is too small for this backbone: "
        "backbone.layers.3.ln1.weight gets layer id 4, i.e. a learning-rate scale above 1; set num_layers >= 3"]


def test_tied_parameters_without_bypass_duplicate(toys: Path) -> None:
    assert _check(_tied_lm(toys, {"bias_lr_mult": 2.0}), toys) == [
        "error: optim_wrapper.paramwise_cfg.bypass_duplicate: parameter 'head.weight' is the same tensor as "
        "'embed.weight' (tied weights); set optim_wrapper.paramwise_cfg.bypass_duplicate: true to optimize it once"]


def test_the_build_refuses_tied_parameters_with_the_same_one_line_user_error(toys: Path) -> None:
    from engine import build

    # Checked untied (the check would refuse first), then built on the tied model: the build's own refusal.
    cfg, _ = check_params(_tied_lm(toys, {"bias_lr_mult": 2.0}) | {"model": {"type": "tokens.model.TinyLM"}})
    cfg["model"]["tie_weights"] = True
    with pytest.raises(UserError) as caught:
        build.build_optimizer(cfg, build.build_model(cfg))
    assert str(caught.value) == (
        "optim_wrapper.paramwise_cfg.bypass_duplicate: parameter 'head.weight' is the same tensor as 'embed.weight' "
        "(tied weights); set optim_wrapper.paramwise_cfg.bypass_duplicate: true to optimize it once")


def test_tied_parameters_with_bypass_duplicate_train_as_one_tensor(toys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.build import build_training

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{toys / 'mlflow.db'}")
    monkeypatch.chdir(toys)
    params = _tied_lm(toys, {"bias_lr_mult": 2.0, "bypass_duplicate": True})
    params["train_cfg"].update(max_iters=2, val_interval=2)
    params["param_scheduler"] = []
    params["default_hooks"]["checkpoint"]["interval"] = 2
    cfg, _ = check_params(params)
    reset_accelerate()
    runner = build_training(cfg, toys / "work")
    model = runner.model
    tied = model.embed.weight
    assert model.head.weight is tied
    before = tied.detach().clone()
    optimized = [p for g in runner.optim_wrapper.param_groups for p in g["params"]]
    assert sum(p is tied for p in optimized) == 1  # in one group, so each step moves it once
    runner.train()
    assert runner.iter == 2
    assert model.head.weight is model.embed.weight  # still tied after the steps
    assert not torch.equal(model.embed.weight.detach(), before)
    # The checkpoint and the final weights hold the tied tensor under both names (safetensors refuses shared
    # memory, so one name holds a copy); loading them keeps a fresh tied model tied.
    from safetensors.torch import load_file

    runner.save_weights(toys / "model.safetensors")
    saved = load_file(str(toys / "model.safetensors"))
    assert torch.equal(saved["embed.weight"], saved["head.weight"])
    assert torch.equal(saved["embed.weight"], model.embed.weight.detach())
    fresh = type(model)(dim=8, tie_weights=True)
    fresh.load_state_dict(saved)
    assert fresh.head.weight is fresh.embed.weight and torch.equal(fresh.embed.weight, model.embed.weight)
    assert any((toys / "work").rglob("model.safetensors"))  # the checkpoint was written too
