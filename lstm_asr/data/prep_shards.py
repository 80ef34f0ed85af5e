"""Resumable prep: a split is featurised in shards that are each made durable on their own.

The items of a split are cut into consecutive shards of ``shard_size`` utterances (shard ``k`` holds items
``[k * size, (k + 1) * size)``). Fixed item ranges, rather than shards closed at a byte size, let a shard be checked
against its own items alone, without reading any other shard. A finished shard is one ``.npz`` file in
``<split>.shards/`` holding its kept utterances' features and labels (concatenated) and a JSON record: the item
range, a fingerprint of exactly those items with the feature settings and tokens (``prep._fingerprint``), and what
prep decided for each item (kept, with its lengths, or skipped, with the reason), so a reused shard replays the
same report as a fresh one.

A shard is written under a temporary name, fsynced and renamed, so a file with a shard's name is complete; npz
members carry CRC-32 checksums that zipfile verifies while numpy reads them, so a truncated or damaged file is
detected and redone, never used. When every shard of a split exists, prep concatenates them into the contiguous
store (``feature_store``) and removes the shard folder: readers never see shards.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_asr.atomic_file import write_atomically
from lstm_asr.errors import reporting_write_errors

SHARD_VERSION = 1
DEFAULT_SHARD_SIZE = 200  # utterances: TIMIT's 3,696 training utterances make 19 shards of ~30 MB


@dataclass
class Shard:
    """One finished range of items: the decisions in item order, and the kept utterances' arrays."""

    start: int
    stop: int
    fingerprint: str
    dim: int
    # Per item, in order: {"id", "speaker", "ref", "frames", "labels"} when kept, {"skip", "reason"} when skipped.
    entries: list[dict] = field(default_factory=list)
    repaired: Counter = field(default_factory=Counter)  # input glitches a reader fixed, kind -> count
    feats: list[np.ndarray] | np.ndarray = field(default_factory=list)
    labels: list[np.ndarray] | np.ndarray = field(default_factory=list)

    def add(self, utt_id: str, speaker: str, feats: np.ndarray, labels: np.ndarray, ref: str) -> None:
        """Keep one utterance (features (T, dim), label ids, reference text)."""
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ValueError(f"{utt_id}: features of shape {feats.shape}, expected (T, {self.dim})")
        self.feats.append(np.ascontiguousarray(feats, dtype=np.float32))
        self.labels.append(np.ascontiguousarray(labels, dtype=np.int32))
        self.entries.append({"id": utt_id, "speaker": speaker, "ref": ref, "frames": int(feats.shape[0]),
                             "labels": int(labels.shape[0])})

    def skip(self, path: str, reason: str) -> None:
        self.entries.append({"skip": path, "reason": reason})

    def kept(self) -> list[tuple[dict, np.ndarray, np.ndarray]]:
        """(entry, features, labels) of each kept utterance, in item order (views into the shard's arrays)."""
        out, f, lab = [], 0, 0
        for e in self.entries:
            if "skip" in e:
                continue
            out.append((e, self.feats[f:f + e["frames"]], self.labels[lab:lab + e["labels"]]))
            f, lab = f + e["frames"], lab + e["labels"]
        return out

    def record(self) -> dict:
        return {"version": SHARD_VERSION, "start": self.start, "stop": self.stop, "fingerprint": self.fingerprint,
                "dim": self.dim, "entries": self.entries, "repaired": dict(self.repaired)}


class ShardStore:
    """The shard folder of one split being prepared (``<split>.shards`` beside the split's folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        if self.folder.is_dir():  # a write a kill interrupted leaves a temporary file: never a shard
            for tmp in self.folder.glob("*.tmp"):
                tmp.unlink(missing_ok=True)

    def path(self, start: int) -> Path:
        return self.folder / f"shard-{start:09d}.npz"

    def write(self, shard: Shard) -> None:
        """Write ``shard`` atomically: temporary file, fsync, rename, fsync of the folder."""
        final = self.path(shard.start)
        feats = np.concatenate(shard.feats) if len(shard.feats) else np.zeros((0, shard.dim), np.float32)
        labels = np.concatenate(shard.labels) if len(shard.labels) else np.zeros(0, np.int32)
        record = np.frombuffer(json.dumps(shard.record()).encode(), dtype=np.uint8)
        with reporting_write_errors(final, "a prep shard"):
            write_atomically(final, lambda f: np.savez(f, feats=feats, labels=labels, record=record))

    def load(self, start: int, stop: int, fingerprint: str, dim: int) -> Shard | None:
        """The shard of items ``[start, stop)`` if it is on disk, complete, intact and up to date; else None.

        A damaged or stale file is removed, so it is redone rather than read again.
        """
        path = self.path(start)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                record = json.loads(z["record"].tobytes().decode())
                feats, labels = z["feats"], z["labels"]  # reading a member checks its CRC-32
            shard = Shard(start, stop, fingerprint, dim, record["entries"], Counter(record["repaired"]),
                          feats, labels)
            kept = [e for e in shard.entries if "skip" not in e]
            ok = (record["version"] == SHARD_VERSION and record["start"] == start and record["stop"] == stop
                  and record["fingerprint"] == fingerprint and record["dim"] == dim
                  and len(shard.entries) == stop - start and feats.dtype == np.float32 and labels.dtype == np.int32
                  and feats.shape == (sum(e["frames"] for e in kept), dim)
                  and labels.shape == (sum(e["labels"] for e in kept),))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
            ok = False
        if not ok:
            path.unlink(missing_ok=True)
            return None
        return shard

    def remove_others(self, starts: set[int]) -> None:
        """Delete shard files other than those starting at ``starts`` (left by a run with another shard size)."""
        if self.folder.is_dir():
            keep = {self.path(s).name for s in starts}
            for p in self.folder.glob("shard-*.npz"):
                if p.name not in keep:
                    p.unlink(missing_ok=True)

    def clear(self) -> None:
        """Remove the folder (the split is finished, or ``--force``)."""
        if self.folder.exists():
            shutil.rmtree(self.folder)
