"""Resume skips data by index: a resumed run loads only the items of the iterations after its checkpoint, the same
items (same epoch, same order) an uninterrupted run loads there; the skipped batches are never loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from engine.seg.dataset import SegDataset
from tests.engine.fixtures import NUM_TRAIN, StopAt, StopTraining, make_cfg, make_runner


class CountingSegDataset(SegDataset):
    """SegDataset that records every training item it loads as (epoch, index)."""

    loaded: ClassVar[list[tuple[int, int]]] = []

    def __getitem__(self, index: int) -> Any:
        if self.split == "train":
            CountingSegDataset.loaded.append((self.epoch, int(index)))
        return super().__getitem__(index)


def _loaded_by(runner: Any) -> list[tuple[int, int]]:
    # The class the config's dotted path resolved to (pytest may import this file under another module name).
    counting = type(runner.train_loop.dataloader.dataset)
    assert counting.__name__ == "CountingSegDataset"
    counting.loaded.clear()
    try:
        runner.train()
    finally:
        loaded = list(counting.loaded)
    return loaded


CASES = {
    # 4 batches of 4 an epoch: iteration 7 ends at batch 3 of epoch 1
    "iteration loop": ({"train_cfg": {"max_iters": 10, "val_interval": 10},
                        "default_hooks": {"checkpoint": {"interval": 7}}}, 7),
    # epoch loop, checkpoint in the middle of the second epoch (batch 2 of epoch 1)
    "epoch loop mid-epoch": ({"train_cfg": {"_delete_": True, "type": "EpochBasedTrainLoop", "max_epochs": 3,
                                            "val_interval": 3},
                              "default_hooks": {"checkpoint": {"interval": 6, "by_epoch": False}}}, 6),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_resume_loads_only_the_items_after_its_checkpoint(tmp_path: Path, case: str) -> None:
    overrides, at = CASES[case]
    cfg = make_cfg({"data": {"dataset": {"type": "tests.engine.test_resume_index_skip.CountingSegDataset"}},
                    **overrides})
    batch = cfg["data"]["batch_size"]
    uninterrupted = _loaded_by(make_runner(cfg, tmp_path / "a"))
    # Every iteration's items, plus at most one batch Accelerate's loader fetches ahead inside an epoch.
    assert len(uninterrupted) - _iters(cfg) * batch in (0, batch)

    first = make_runner(cfg, tmp_path / "b")
    first.register_hook(StopAt(iters=at))
    with pytest.raises(StopTraining):
        _loaded_by(first)
    resumed = make_runner(cfg, tmp_path / "b")
    loaded = _loaded_by(resumed)
    assert resumed.iter == _iters(cfg)
    # Not one item of the first `at` iterations is loaded again; the rest are the same items in the same order.
    assert loaded == uninterrupted[at * batch:]
    assert loaded[0][0] == at * batch // NUM_TRAIN  # it starts inside the checkpoint's epoch, at its next batch


def _iters(cfg: dict[str, Any]) -> int:
    train = cfg["train_cfg"]
    if train["type"] == "IterBasedTrainLoop":
        return train["max_iters"]
    return train["max_epochs"] * NUM_TRAIN // cfg["data"]["batch_size"]
