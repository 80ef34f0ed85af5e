"""Length-bucketed batches under a padded-frames budget.

Utterances of similar length go together so little compute is spent on padding, and no batch holds more than
``max_frames`` padded frames (batch size x longest utterance), which bounds memory whatever the lengths. Each
epoch jitters the lengths before sorting and shuffles the batch order, with a generator seeded by (seed, epoch), so
batches vary between epochs yet a run is reproducible.
"""

from __future__ import annotations

import numpy as np


def bucket_batches(lengths: np.ndarray, max_frames: int, max_batch: int, seed: int | None = None,
                   epoch: int = 0, jitter: float = 0.1) -> list[np.ndarray]:
    """Split utterance indices into batches of similar length.

    ``seed=None`` gives a deterministic, unshuffled order (longest first), used for evaluation. An utterance
    longer than ``max_frames`` forms a batch of its own rather than being dropped.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if seed is None:
        order = np.argsort(-lengths, kind="stable")
        rng = None
    else:
        rng = np.random.default_rng([seed, epoch])
        noisy = lengths * (1.0 + jitter * rng.uniform(-1.0, 1.0, size=len(lengths)))
        order = np.argsort(-noisy, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    n = len(order)
    while start < n:
        # Sorted longest first (up to jitter), so the running max of the batch is known as it grows.
        longest = int(lengths[order[start]])
        end = start + 1
        while end < n and end - start < max_batch:
            longest = max(longest, int(lengths[order[end]]))
            if longest * (end - start + 1) > max_frames:
                break
            end += 1
        batches.append(order[start:end])
        start = end
    if rng is not None:
        perm = rng.permutation(len(batches))
        batches = [batches[i] for i in perm]
    return batches
