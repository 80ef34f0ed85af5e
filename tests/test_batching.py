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
