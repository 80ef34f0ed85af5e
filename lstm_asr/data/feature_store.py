"""On-disk store of prepared feature and label sequences: contiguous arrays with an index.

One folder per split::

    feats.npy    float32 (total_frames, dim): every utterance's frames, one after another
    labels.npy   int32 (total_labels,): every utterance's label ids, one after another
    index.json   utterance ids, speakers, offsets and lengths into both arrays, reference transcripts
    DONE         written last; a folder without it is unfinished and is never read

``feats.npy`` is memory-mapped on load, so opening a split costs nothing and the OS page cache shares it. A split
is written to ``<name>.partial`` and renamed into place when complete, so a killed ``prep`` never leaves a
half-written split that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lstm_asr.errors import LstmAsrError, reporting_write_errors


@dataclass
class SplitWriter:
    """Appends utterances to a split being written; :meth:`close` makes it visible atomically."""

    folder: Path
    dim: int
    ids: list[str] = field(default_factory=list)
    speakers: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    num_frames: list[int] = field(default_factory=list)
    num_labels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.partial = self.folder.with_name(self.folder.name + ".partial")
        with reporting_write_errors(self.partial, "prepared features"):
            if self.partial.exists():
                shutil.rmtree(self.partial)
            self.partial.mkdir(parents=True)
            self._feats = open(self.partial / "feats.raw", "wb")  # noqa: SIM115 - closed in close()
            self._labels = open(self.partial / "labels.raw", "wb")  # noqa: SIM115

    def add(self, utt_id: str, speaker: str, feats: np.ndarray, labels: np.ndarray, ref: str) -> None:
        """Append one utterance (features (T, dim) float32, label ids, reference text)."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"{utt_id}: features of shape {feats.shape}, expected (T, {self.dim})")
        with reporting_write_errors(self.partial, "prepared features"):
            self._feats.write(np.ascontiguousarray(feats, dtype=np.float32).tobytes())
            self._labels.write(np.ascontiguousarray(labels, dtype=np.int32).tobytes())
        self.ids.append(utt_id)
        self.speakers.append(speaker)
        self.refs.append(ref)
        self.num_frames.append(int(feats.shape[0]))
        self.num_labels.append(int(labels.shape[0]))

    def close(self, extra: dict | None = None) -> None:
        """Turn the raw streams into .npy files, write the index, and rename the folder into place.

        A failed write (disk full, permissions) is a one-line LstmAsrError; the split stays unfinished (no DONE).
        """
        with reporting_write_errors(self.partial, "prepared features"):
            self._feats.close()
            self._labels.close()
            total = sum(self.num_frames)
            _raw_to_npy(self.partial / "feats.raw", self.partial / "feats.npy", np.float32, (total, self.dim))
            _raw_to_npy(self.partial / "labels.raw", self.partial / "labels.npy", np.int32, (sum(self.num_labels),))
            index = {"dim": self.dim, "ids": self.ids, "speakers": self.speakers, "refs": self.refs,
                     "num_frames": self.num_frames, "num_labels": self.num_labels, **(extra or {})}
            (self.partial / "index.json").write_text(json.dumps(index))
            (self.partial / "DONE").write_text("ok\n")
            _fsync_dir(self.partial)
            if self.folder.exists():
                shutil.rmtree(self.folder)
            os.replace(self.partial, self.folder)


def _raw_to_npy(raw: Path, npy: Path, dtype: type, shape: tuple[int, ...]) -> None:
    """Prefix a raw little-endian stream with an .npy header without copying it through memory twice."""
    header = np.lib.format.header_data_from_array_1_0(np.empty((0,), dtype=dtype))
    header["shape"] = shape
    with open(npy, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        with open(raw, "rb") as src:
            shutil.copyfileobj(src, out, 16 << 20)
        out.flush()
        os.fsync(out.fileno())
    raw.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FeatureSplit:
    """A prepared split, memory-mapped: ``feats(i)`` and ``labels(i)`` are views, not copies."""

    def __init__(self, folder: Path) -> None:
        folder = Path(folder)
        if not (folder / "DONE").exists():
            raise LstmAsrError(f"{folder}: not a finished feature split (run 'lstm-asr prep' first)")
        try:
            self.index = json.loads((folder / "index.json").read_text())
            self._feats = np.load(folder / "feats.npy", mmap_mode="r")
            self._labels = np.load(folder / "labels.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise LstmAsrError(f"{folder}: unreadable feature split ({exc}); delete it and run prep again") from None
        self.folder = folder
        self.ids: list[str] = self.index["ids"]
        self.speakers: list[str] = self.index["speakers"]
        self.refs: list[str] = self.index["refs"]
        self.num_frames = np.asarray(self.index["num_frames"], dtype=np.int64)
        self.num_labels = np.asarray(self.index["num_labels"], dtype=np.int64)
        self.frame_offsets = np.concatenate([[0], np.cumsum(self.num_frames)[:-1]]).astype(np.int64)
        self.label_offsets = np.concatenate([[0], np.cumsum(self.num_labels)[:-1]]).astype(np.int64)
        if self._feats.shape[0] != int(self.num_frames.sum()) or self._labels.shape[0] != int(self.num_labels.sum()):
            raise LstmAsrError(f"{folder}: index and arrays disagree; delete it and run prep again")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.index["dim"])

    def feats(self, i: int) -> np.ndarray:
        o = self.frame_offsets[i]
        return self._feats[o : o + self.num_frames[i]]

    def labels(self, i: int) -> np.ndarray:
        o = self.label_offsets[i]
        return self._labels[o : o + self.num_labels[i]]

    def all_feats(self) -> np.ndarray:
        """Every frame of the split (memory-mapped), e.g. for normalisation statistics."""
        return self._feats

    def all_labels(self) -> np.ndarray:
        """Every utterance's label ids, concatenated in split order (memory-mapped; ``num_labels`` splits them)."""
        return self._labels

    def batch(self, indices: list[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Padded features (B, T, D), lengths (B,), concatenated targets and target lengths for CTC."""
        idx = np.asarray(indices)
        lengths = self.num_frames[idx]
        out = np.zeros((len(idx), int(lengths.max()), self.dim), dtype=np.float32)
        for row, i in enumerate(idx):  # one copy per utterance (a memcpy), not per frame
            out[row, : lengths[row]] = self.feats(int(i))
        targets = np.concatenate([self.labels(int(i)) for i in idx]) if len(idx) else np.zeros(0, np.int32)
        return (torch.from_numpy(out), torch.from_numpy(lengths), torch.from_numpy(targets.astype(np.int64)),
                torch.from_numpy(self.num_labels[idx]))
