"""Corpus sources: what a recipe's ``corpus.type`` names, reduced to the few things prep and scoring need.

A source lists a split as :class:`CorpusItem` (id, speaker, input file, label symbols), names its token inventory,
and says how symbols are mapped before scoring (TIMIT: 61 phones folded to 39). Readers of the real formats live
in ``data_prep``; this module only adapts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CorpusError, LstmAsrError


@dataclass(frozen=True)
class CorpusItem:
    utt_id: str
    speaker: str
    path: Path  # the input file (audio)
    labels: tuple[str, ...]  # training label symbols
    # A part of the file (Kaldi ``segments``, manifest start/end), in seconds; None = from the start / to the end.
    start: float | None = None
    end: float | None = None
    command: str | None = None  # a Kaldi wav.scp pipe ("sox x.flac -t wav - |") that writes the audio to stdout

    def audio_options(self) -> dict:
        """The keyword arguments (beyond path and features) a source's ``featurize`` needs for this item."""
        opts = {"start": self.start, "end": self.end, "command": self.command}
        return {k: v for k, v in opts.items() if v is not None}


@dataclass
class SplitItems:
    items: list[CorpusItem]
    skipped: list[tuple[str, str]]  # (file, reason)


SOURCES: dict[str, type] = {}


def register_source(cls: type) -> type:
    """Class decorator: make a corpus source available to recipes as ``corpus.type: <cls.kind>``.

    A source class has ``kind``, ``__init__(root)``, ``tokens()``, ``split(name) -> SplitItems``, a static
    ``score_units(symbols)`` and a module-level-picklable static ``featurize(path, feature_cfg_dict) -> ndarray``
    (run in prep's worker processes).
    """
    SOURCES[cls.kind] = cls
    return cls


def featurize_audio(path: str, cfg_dict: dict) -> np.ndarray:
    """Features of one audio file (any format soundfile reads, resampled to the configured rate)."""
    from .audio import load_audio
    from .features import FeatureConfig, compute_features

    cfg = FeatureConfig(**cfg_dict)
    return compute_features(load_audio(path, cfg.sample_rate), cfg).numpy()


@register_source
class TimitSource:
    """TIMIT (or a generated corpus in its layout): 60 training phones (q removed), scored on 39."""

    kind = "timit"
    featurize = staticmethod(featurize_audio)

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


def source_class(kind: str) -> type:
    try:
        return SOURCES[kind]
    except KeyError:
        raise LstmAsrError(f"unknown corpus type {kind!r} (known: {', '.join(sorted(SOURCES))})") from None


def score_units_for(kind: str, units: str = ""):
    """The symbol mapping applied to references and hypotheses before scoring, by corpus type (and, for sources
    with a choice of output units, ``corpus.units``: character and BPE tokens are scored as words)."""
    cls = source_class(kind)
    if hasattr(cls, "score_units_for_units"):
        return cls.score_units_for_units(units)
    return cls.score_units


def open_source(kind: str, root: str | Path, options=None):
    """Open the corpus of ``kind`` at ``root`` (a missing folder is a one-line error naming it).

    ``options`` is the recipe's corpus section; sources with a ``from_recipe(root, options)`` constructor take
    their settings (output units, lexicon, ...) from it.
    """
    cls = source_class(kind)
    root = Path(root)
    if not root.exists():
        raise CorpusError(root, "corpus folder not found")
    if options is not None and hasattr(cls, "from_recipe"):
        return cls.from_recipe(root, options)
    return cls(root)


# Sources defined outside this module register themselves on import (they import this module, so last).
from data_prep import iam_ondb, kaldi_dir, librispeech, manifest  # noqa: E402, F401
