"""The benchmark's shared data order: EpochSampler visits what Accelerate's seedable sampler (the engine's) visits."""

import torch
from accelerate.data_loader import SeedableRandomSampler

from benchmarks.peer_arms import EpochSampler


def test_epoch_sampler_matches_the_engines_seedable_sampler_epoch_after_epoch():
    data = list(range(50))
    ours, theirs = EpochSampler(len(data), seed=42), SeedableRandomSampler(data, data_seed=42)
    for epoch in range(3):
        assert list(ours) == list(theirs), epoch
    ours.set_epoch(7)
    theirs.set_epoch(7)
    assert list(ours) == list(theirs)


def test_infinite_epoch_sampler_runs_on_into_the_next_epochs_order():
    stream = iter(EpochSampler(5, seed=3, infinite=True))
    taken = [next(stream) for _ in range(15)]
    expected = [torch.randperm(5, generator=torch.Generator().manual_seed(3 + e)).tolist() for e in range(3)]
    assert taken == sum(expected, [])
