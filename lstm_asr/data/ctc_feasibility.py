"""Which label sequences CTC can emit in a given number of frames.

CTC emits at most one label per frame and needs a blank between two equal neighbouring labels, so a sequence of
``n`` labels with ``r`` repeated pairs needs ``n + r`` frames. Prep skips (and counts) utterances that fail this at
the feature rate; training checks it again at the model's output rate (frame stacking and pyramids reduce it).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


def ctc_min_frames(labels: torch.Tensor | list[int]) -> int:
    """Fewest frames CTC needs to emit ``labels``: one per label plus a blank between each repeated pair."""
    seq = list(labels.tolist() if isinstance(labels, torch.Tensor) else labels)
    repeats = sum(1 for a, b in zip(seq, seq[1:], strict=False) if a == b)
    return len(seq) + repeats


def ctc_min_frames_all(labels: np.ndarray, num_labels: np.ndarray) -> np.ndarray:
    """``ctc_min_frames`` of every utterance of a split at once, from its concatenated labels and label counts."""
    labels = np.asarray(labels)
    num_labels = np.asarray(num_labels, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(num_labels)[:-1]]).astype(np.int64)
    repeat = np.zeros(len(labels), dtype=np.int64)  # repeat[i]: label i repeats label i-1 of the same utterance
    repeat[1:] = labels[1:] == labels[:-1]
    repeat[starts[starts < len(labels)]] = 0
    cum = np.concatenate([[0], np.cumsum(repeat)])
    return num_labels + cum[starts + num_labels] - cum[starts]


def ctc_feasible(num_frames: np.ndarray, labels: np.ndarray, num_labels: np.ndarray,
                 output_lengths: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Boolean mask: which utterances keep enough frames for CTC after the model's frame-rate reduction."""
    out = output_lengths(torch.as_tensor(np.asarray(num_frames, dtype=np.int64))).numpy()
    return out >= ctc_min_frames_all(labels, num_labels)
