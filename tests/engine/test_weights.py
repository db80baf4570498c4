"""Weights that do not fit the model: one line naming the first keys of each kind and the likely cause."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from engine.errors import UserError
from engine.weights import fit_report, load_weights


def _net(width: int = 4, extra: bool = False) -> nn.Module:
    layers = [nn.Linear(2, width), nn.ReLU(), nn.Linear(width, 1)]
    if extra:
        layers.append(nn.Linear(1, 1))
    return nn.Sequential(*layers)


def test_fitting_weights_load_exactly() -> None:
    source, target = _net(), _net()
    load_weights(target, source.state_dict(), source="w")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values(),
                                                 strict=True))


def test_report_sorts_missing_unexpected_and_mis_shaped() -> None:
    missing, unexpected, shaped = fit_report(_net(extra=True), {**_net(width=8).state_dict(), "x.y": torch.ones(1)})
    assert missing == ["3.bias", "3.weight"] and unexpected == ["x.y"]
    assert shaped == ["0.bias", "0.weight", "2.weight"]


def test_strict_mismatch_is_one_line_with_the_cause() -> None:
    with pytest.raises(UserError) as info:
        load_weights(_net(extra=True), _net(width=8).state_dict(), source="models/model.safetensors",
                     cause="model.* changed since training")
    text = str(info.value)
    assert text == ("models/model.safetensors: the weights do not fit the model (missing 2: 3.bias, 3.weight; "
                    "mis-shaped 3: 0.bias, 0.weight, 2.weight (e.g. 0.bias: saved 8, model 4)); "
                    "model.* changed since training")


def test_non_strict_loads_what_fits(caplog: pytest.LogCaptureFixture) -> None:
    source, target = _net(width=8), _net(extra=True)
    before = target.state_dict()["2.bias"].clone()
    with caplog.at_level(logging.WARNING, logger="trainline"):
        load_weights(target, source.state_dict(), source="w", strict=False)
    assert torch.equal(target.state_dict()["2.bias"], source.state_dict()["2.bias"])
    assert not torch.equal(before, target.state_dict()["2.bias"]) or torch.equal(before, source.state_dict()["2.bias"])
    assert "loaded 1 of 6 tensors non-strictly" in caplog.text
