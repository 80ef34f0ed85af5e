"""Length-bucketed batches: every utterance once, padded frames within the budget, seeded."""

from __future__ import annotations

import numpy as np

from lstm_asr.data.batching import bucket_batches


def test_batches_cover_every_utterance_once_within_budget() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 800, size=500)
    batches = bucket_batches(lengths, max_frames=4000, max_batch=16, seed=1, epoch=3)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    for b in batches:
        assert len(b) <= 16 and lengths[b].max() * len(b) <= 4000
    # Bucketing keeps padding low: under 10% of the padded frames are padding.
    padded = sum(lengths[b].max() * len(b) for b in batches)
    assert lengths.sum() / padded > 0.9


def test_overlong_utterance_gets_its_own_batch() -> None:
    batches = bucket_batches(np.array([100, 5000, 120]), max_frames=1000, max_batch=8, seed=None)
    assert [b.tolist() for b in batches][0] == [1]


def test_seeded_per_epoch_and_deterministic() -> None:
    lengths = np.random.default_rng(1).integers(10, 500, size=200)
    a = bucket_batches(lengths, 3000, 32, seed=7, epoch=1)
    b = bucket_batches(lengths, 3000, 32, seed=7, epoch=1)
    c = bucket_batches(lengths, 3000, 32, seed=7, epoch=2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert len(a) != len(c) or not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_training_batches_are_neighbours_in_length_and_vary_by_epoch() -> None:
    # Cut from the exact length order: no utterance outside a batch lies strictly between its shortest and longest,
    # so padding is as low as the budget allows; the cuts and the order still change from epoch to epoch.
    lengths = np.random.default_rng(2).integers(50, 800, size=400)
    for epoch in (1, 2):
        batches = bucket_batches(lengths, max_frames=6000, max_batch=16, seed=5, epoch=epoch)
        for b in batches:
            lo, hi = lengths[b].min(), lengths[b].max()
            assert ((lengths > lo) & (lengths < hi)).sum() == len(b) - ((lengths[b] == lo) | (lengths[b] == hi)).sum()
    one = {tuple(sorted(b.tolist())) for b in bucket_batches(lengths, 6000, 16, seed=5, epoch=1)}
    two = {tuple(sorted(b.tolist())) for b in bucket_batches(lengths, 6000, 16, seed=5, epoch=2)}
    assert one != two
