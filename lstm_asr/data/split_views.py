"""Views of prepared splits with the interface of :class:`~lstm_asr.data.feature_store.FeatureSplit`: normalised
(``features.normalize``) and concatenated (the corpora of a multi-corpus recipe).

Prep stores un-normalised features; the views change what is read, never the store, so one store serves every
normalisation and every recipe that mixes the corpus in. Training, dev decoding and ``evaluate`` all read splits
through :func:`lstm_asr.data.prep.load_splits`, so they see the same inputs:

- ``global``: the stored features; the model's :class:`~lstm_asr.data.features.Normalizer` applies the training
  set's mean and variance (as before this option existed).
- ``utterance``: each utterance by its own mean and variance, per dimension (over its frames).
- ``speaker``: each utterance by the mean and variance of all the frames of its speaker in its split (statistics
  computed when the split is opened, in float64). A file decoded on its own has no speaker: ``compute_features``
  (and the exported front end) then use the utterance's own statistics.

With ``utterance`` or ``speaker`` the model's own normaliser is left at the identity (zero mean, unit variance:
the inputs already are normalised), so checkpoints and exports need nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.features import VARIANCE_FLOOR

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _padded(split: Any, indices: Sequence[int] | np.ndarray) -> Batch:
    """:meth:`FeatureSplit.batch` over any split-like object's ``feats``/``labels``."""
    idx = np.asarray(indices, dtype=np.int64)
    lengths = split.num_frames[idx]
    out = np.zeros((len(idx), int(lengths.max()) if len(idx) else 0, split.dim), dtype=np.float32)
    for row, i in enumerate(idx):
        out[row, : lengths[row]] = split.feats(int(i))
    targets = np.concatenate([split.labels(int(i)) for i in idx]) if len(idx) else np.zeros(0, np.int32)
    return (torch.from_numpy(out), torch.from_numpy(lengths), torch.from_numpy(targets.astype(np.int64)),
            torch.from_numpy(split.num_labels[idx]))


def _stats(total: np.ndarray, total_sq: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    mean = total / max(count, 1)
    var = np.maximum(total_sq / max(count, 1) - mean * mean, VARIANCE_FLOOR)
    return mean, 1.0 / np.sqrt(var)


class NormalizedSplit:
    """A prepared split whose features are normalised per utterance or per speaker as they are read."""

    def __init__(self, split: FeatureSplit, mode: str) -> None:
        if mode not in ("utterance", "speaker"):
            raise ValueError(f"unknown normalisation {mode!r}")
        self.split, self.mode = split, mode
        self._speaker_stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if mode == "speaker":
            sums: dict[str, list[Any]] = {}
            for i, spk in enumerate(split.speakers):
                x = np.asarray(split.feats(i), dtype=np.float64)
                acc = sums.setdefault(spk, [np.zeros(split.dim), np.zeros(split.dim), 0])
                acc[0] += x.sum(0)
                acc[1] += (x * x).sum(0)
                acc[2] += x.shape[0]
            self._speaker_stats = {s: _stats(*acc) for s, acc in sums.items()}

    def __getattr__(self, name: str) -> Any:  # ids, speakers, refs, num_frames, labels, index, folder, ...
        return getattr(self.split, name)

    def __len__(self) -> int:
        return len(self.split)

    def normalized(self, i: int, feats: np.ndarray | torch.Tensor) -> np.ndarray:
        """``feats`` (T, D) of utterance ``i`` (stored, or recomputed from augmented audio) normalised: by their
        own statistics, or by those of the utterance's speaker."""
        x = np.asarray(feats, dtype=np.float64)
        if self.mode == "speaker":
            mean, inv_std = self._speaker_stats[self.split.speakers[i]]
        else:
            mean, inv_std = _stats(x.sum(0), (x * x).sum(0), x.shape[0])
        return ((x - mean) * inv_std).astype(np.float32)

    def feats(self, i: int) -> np.ndarray:
        return self.normalized(i, self.split.feats(i))

    def all_feats(self) -> np.ndarray:
        """Every normalised frame, in split order (a copy in memory, unlike the stored split's)."""
        return np.concatenate([self.feats(i) for i in range(len(self))]) if len(self) else self.split.all_feats()

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        return _padded(self, indices)


def normalized(split: FeatureSplit, mode: str) -> FeatureSplit | NormalizedSplit:
    """``split`` as ``features.normalize`` has it read: itself for ``global``, else a :class:`NormalizedSplit`."""
    return split if mode == "global" else NormalizedSplit(split, mode)


class ConcatSplit:
    """Several corpora's prepared splits as one: utterance ``i`` of the whole is utterance ``local[i]`` of part
    ``part[i]``. Label ids are mapped into the shared token inventory (``maps[k][id]``; -1: not in it); ids and
    speakers get their corpus name in front (``name/id``), so two corpora's speakers never merge."""

    def __init__(self, parts: list[tuple[str, Any, np.ndarray]], tokens: list[str], folder: Path) -> None:
        if not parts:
            raise ValueError("no splits to concatenate")
        self.parts = [p[1] for p in parts]
        self.names = [p[0] for p in parts]
        self.maps = [np.asarray(p[2], dtype=np.int64) for p in parts]
        self.part = np.concatenate([np.full(len(s), k, dtype=np.int64) for k, s in enumerate(self.parts)])
        self.local = np.concatenate([np.arange(len(s), dtype=np.int64) for s in self.parts])
        self.ids = [f"{n}/{u}" for n, s in zip(self.names, self.parts, strict=True) for u in s.ids]
        self.speakers = [f"{n}/{u}" for n, s in zip(self.names, self.parts, strict=True) for u in s.speakers]
        self.refs = [r for s in self.parts for r in s.refs]
        self.num_frames = np.concatenate([np.asarray(s.num_frames, dtype=np.int64) for s in self.parts])
        self.num_labels = np.concatenate([np.asarray(s.num_labels, dtype=np.int64) for s in self.parts])
        dims = {s.dim for s in self.parts}
        if len(dims) != 1:
            raise ValueError(f"splits of different feature dimensions {sorted(dims)}")
        self.dim = dims.pop()
        self.index: dict[str, Any] = {"tokens": list(tokens), "dim": self.dim}
        if any("texts" in s.index for s in self.parts):  # word transcripts, where the readers gave them
            self.index["texts"] = [t for s in self.parts for t in (s.index.get("texts") or [""] * len(s))]
        self.folder = folder

    def __len__(self) -> int:
        return len(self.ids)

    def feats(self, i: int) -> np.ndarray:
        return self.parts[self.part[i]].feats(int(self.local[i]))

    def labels(self, i: int) -> np.ndarray:
        k = self.part[i]
        return self.maps[k][np.asarray(self.parts[k].labels(int(self.local[i])), dtype=np.int64)].astype(np.int32)

    def normalized(self, i: int, feats: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        part = self.parts[self.part[i]]
        return part.normalized(int(self.local[i]), feats) if hasattr(part, "normalized") else feats

    def all_labels(self) -> np.ndarray:
        return np.concatenate([self.labels(i) for i in range(len(self))]) if len(self) else np.zeros(0, np.int32)

    def all_feats(self) -> np.ndarray:
        return np.concatenate([s.all_feats() for s in self.parts])

    def batch(self, indices: Sequence[int] | np.ndarray) -> Batch:
        return _padded(self, indices)


def frame_blocks(split: Any, chunk: int = 200_000) -> Iterator[np.ndarray]:
    """The split's frames in blocks of at most ``chunk`` (float64), without loading a whole store into memory."""
    if isinstance(split, ConcatSplit):
        for part in split.parts:
            yield from frame_blocks(part, chunk)
        return
    if isinstance(split, NormalizedSplit):
        for i in range(len(split)):
            yield np.asarray(split.feats(i), dtype=np.float64)
        return
    feats = split.all_feats()
    for start in range(0, feats.shape[0], chunk):
        yield np.asarray(feats[start : start + chunk], dtype=np.float64)
