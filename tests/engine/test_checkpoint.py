"""engine.checkpoint: atomic directory checkpoints, the last_checkpoint pointer, weights_only loading, RNG states."""

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine import checkpoint as ckpt
from engine.checkpoint import (
    POINTER,
    atomic_write_text,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def _weights(value: float = 1.0) -> dict[str, torch.Tensor]:
    return {"layer.weight": torch.full((2, 3), value), "layer.bias": torch.arange(2.0)}


def _save(work_dir: Path, name: str, value: float = 1.0, **state: Any) -> Path:
    return save_checkpoint(work_dir, name, _weights(value), {"step": torch.tensor(value), **state},
                           {"iter": int(value), "params_hash": "abc"})


def test_save_writes_a_complete_directory_and_the_pointer(tmp_path: Path) -> None:
    path = _save(tmp_path, "iter_1", optim={"lr": [0.1, 0.01], "names": ["a", "b"]})
    assert path == tmp_path / "iter_1"
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.safetensors", "state.pt"]
    assert (tmp_path / POINTER).read_text() == "iter_1"
    assert latest_checkpoint(tmp_path) == path
    weights, state, meta = load_checkpoint(path)
    assert weights.keys() == _weights().keys() and all(torch.equal(weights[k], v) for k, v in _weights().items())
    assert state == {"step": torch.tensor(1.0), "optim": {"lr": [0.1, 0.01], "names": ["a", "b"]}}
    assert meta == {"iter": 1, "params_hash": "abc"}
    assert json.loads((path / "meta.json").read_text()) == meta
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_1", POINTER]  # no temp files left


def test_pointer_follows_the_newest_save_and_a_resave_replaces(tmp_path: Path) -> None:
    _save(tmp_path, "iter_1", 1.0)
    _save(tmp_path, "iter_2", 2.0)
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_2"
    _save(tmp_path, "iter_2", 5.0)
    weights, state, _ = load_checkpoint(tmp_path / "iter_2")
    assert float(state["step"]) == 5.0 and float(weights["layer.weight"][0, 0]) == 5.0


def test_leftover_temp_dir_does_not_confuse_latest_checkpoint(tmp_path: Path) -> None:
    _save(tmp_path, "iter_1")
    # What a kill in the middle of writing iter_2 leaves behind: a partial temp sibling, pointer untouched.
    partial = tmp_path / ".iter_2.tmp"
    partial.mkdir()
    save_file(_weights(2.0), str(partial / "model.safetensors"))
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_1"
    # The next save of that name starts from scratch and removes the leftover.
    _save(tmp_path, "iter_2", 2.0)
    assert not partial.exists()
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_2"
    assert sorted(p.name for p in (tmp_path / "iter_2").iterdir()) == ["meta.json", "model.safetensors", "state.pt"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _save(tmp_path, "iter_1")

    def broken_save(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        _save(tmp_path, "iter_2", 2.0)
    assert not (tmp_path / "iter_2").exists()
    assert (tmp_path / POINTER).read_text() == "iter_1"
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_1"


@pytest.mark.parametrize("pointer", ["iter_9", "incomplete"])
def test_pointer_to_a_missing_or_incomplete_checkpoint_is_ignored(tmp_path: Path, pointer: str) -> None:
    (tmp_path / "incomplete").mkdir()
    save_file(_weights(), str(tmp_path / "incomplete" / "model.safetensors"))  # no meta.json
    (tmp_path / POINTER).write_text(pointer)
    assert latest_checkpoint(tmp_path) is None


def test_no_pointer_means_no_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "does-not-exist") is None


def test_atomic_write_text_replaces_without_leftovers(tmp_path: Path) -> None:
    target = tmp_path / "pointer"
    atomic_write_text(target, "iter_1")
    atomic_write_text(target, "iter_22")
    assert target.read_text() == "iter_22"
    assert [p.name for p in tmp_path.iterdir()] == ["pointer"]


class _Arbitrary:
    """Not a tensor or container: unpickling it would run arbitrary code paths."""

    def __init__(self) -> None:
        self.payload = "x"


def test_load_refuses_arbitrary_objects_in_state(tmp_path: Path) -> None:
    path = _save(tmp_path, "iter_1")
    torch.save({"evil": _Arbitrary()}, path / "state.pt")
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------------------------
# RNG states


def _draws() -> tuple[Any, ...]:
    return (torch.rand(4).tolist(), torch.randn(2).tolist(), random.random(), random.gauss(0, 1),
            np.random.rand(3).tolist(), np.random.randn(3).tolist(), torch.randint(0, 1000, (3,)).tolist())


def _advance() -> None:
    # Leave a cached Gaussian in python's and numpy's generators, so those parts of the state matter too.
    random.gauss(0, 1)
    np.random.randn(1)
    torch.rand(7)


def test_rng_state_round_trip_reproduces_draws() -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _advance()
    state = rng_state()
    expected = _draws()
    _draws()  # move every generator on
    set_rng_state(state)
    assert _draws() == expected


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(4)
    np.random.seed(5)
    torch.manual_seed(6)
    _advance()
    save_checkpoint(tmp_path, "iter_1", _weights(), {"rng": rng_state()}, {"iter": 1})
    expected = _draws()
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    _, state, _ = load_checkpoint(latest_checkpoint(tmp_path))
    set_rng_state(state["rng"])
    assert _draws() == expected
