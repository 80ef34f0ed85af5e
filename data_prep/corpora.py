"""Finding a corpus source by its recipe name: every reader is imported (and so registered) here.

:mod:`data_prep.sources` says what a source is and holds the registry; the readers register themselves in it;
this module imports them all, then answers "which source is ``corpus.type: X``", opens it, and tells the output
units and the scoring mapping it implies. Everything above ``data_prep`` looks sources up here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Imported for their @register_source side effect: each reader adds its source to SOURCES.
from data_prep import (  # noqa: F401
    arctic,
    audio_folder,
    hf_dataset,
    iam_ondb,
    kaldi_dir,
    lhotse_manifest,
    librispeech,
    manifest,
    speechocean762,
    timit,
    unipen,
)
from data_prep.sources import SOURCES, CorpusSource, ScoreMapping
from lstm_asr.errors import CorpusError, LstmAsrError


def source_class(kind: str) -> type[CorpusSource]:
    """The source class a recipe's ``corpus.type`` names (a one-line error for an unknown one)."""
    try:
        return SOURCES[kind]
    except KeyError:
        raise LstmAsrError(f"unknown corpus type {kind!r} (known: {', '.join(sorted(SOURCES))})") from None


def score_units_for(kind: str, units: str = "") -> ScoreMapping:
    """The symbol mapping applied to references and hypotheses before scoring, by corpus type and output units
    (TIMIT: 61 phones folded to 39; character and BPE tokens are scored as words)."""
    return source_class(kind).scorer(units)


def open_source(kind: str, root: str | Path, options: Any = None) -> CorpusSource:
    """Open the corpus of ``kind`` at ``root`` (a missing folder is a one-line error naming it).

    ``options`` is the recipe's corpus section (output units, lexicon, ...); None takes the source's defaults.
    """
    cls = source_class(kind)
    root = Path(root)
    if not root.exists():
        raise CorpusError(root, "corpus folder not found")
    return cls.from_recipe(root, options)


def resolve_units(corpus_type: str, units: str) -> str:
    """The unit type a recipe trains: ``corpus.units``, or the corpus type's default (TIMIT: phones)."""
    if units:
        return units
    cls = SOURCES.get(corpus_type)
    return cls.default_units if cls is not None else "phones"

