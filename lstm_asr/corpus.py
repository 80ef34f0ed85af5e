"""Corpus sources: what a recipe's ``corpus.type`` names, reduced to the few things prep and scoring need.

A source lists a split as :class:`CorpusItem` (id, speaker, input file, label symbols), names its token inventory,
and says how symbols are mapped before scoring (TIMIT: 61 phones folded to 39). Readers of the real formats live
in ``data_prep``; this module only adapts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import CorpusError, LstmAsrError


@dataclass(frozen=True)
class CorpusItem:
    utt_id: str
    speaker: str
    path: Path  # the input file (audio)
    labels: tuple[str, ...]  # training label symbols


@dataclass
class SplitItems:
    items: list[CorpusItem]
    skipped: list[tuple[str, str]]  # (file, reason)


class TimitSource:
    """TIMIT (or a generated corpus in its layout): 60 training phones (q removed), scored on 39."""

    kind = "timit"

    def __init__(self, root: Path) -> None:
        from data_prep.timit import TimitCorpus

        self.root = Path(root)
        self.corpus = TimitCorpus(self.root)

    def tokens(self) -> list[str]:
        from data_prep.phones import TRAIN_PHONES

        return list(TRAIN_PHONES)

    def split(self, name: str) -> SplitItems:
        from data_prep.timit import phone_labels

        listing = self.corpus.split(name)
        items, skipped = [], [(str(p), why) for p, why in listing.skipped]
        for utt in listing.utterances:
            try:
                labels = tuple(phone_labels(utt))
            except CorpusError as exc:
                skipped.append((str(exc.path), exc.problem))
                continue
            items.append(CorpusItem(utt.utt_id, utt.speaker, utt.wav, labels))
        return SplitItems(items, skipped)

    @staticmethod
    def score_units(symbols: list[str]) -> list[str]:
        """Fold 61/60 TIMIT phones to the 39 scoring classes (Lee & Hon 1989); q is deleted."""
        from data_prep.phones import fold_39

        return fold_39(symbols)


def score_units_for(kind: str):
    """The symbol mapping applied to references and hypotheses before scoring, by corpus type."""
    if kind == "timit":
        return TimitSource.score_units
    return lambda symbols: list(symbols)


def open_source(kind: str, root: str | Path) -> TimitSource:
    """Open the corpus of ``kind`` at ``root`` (a missing folder is a one-line error naming it)."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(root, "corpus folder not found")
    if kind == "timit":
        return TimitSource(root)
    raise LstmAsrError(f"unknown corpus type {kind!r}")
