"""What a corpus source is: the interface every reader offers prep and scoring, and the registry of them.

A recipe's ``corpus.type`` names a source. A source lists a split as :class:`CorpusItem` s (id, speaker, input
file, label symbols), names its token inventory, reads one item's raw input (audio samples, or pen strokes), and
says how symbols are mapped before scoring (TIMIT: 61 phones folded to 39; characters glued into words for WER).

Readers register themselves with :func:`register_source` when their module is imported;
:mod:`data_prep.corpora` imports every reader, so the registry is full wherever a source is looked up. The
dependency points one way: readers import this module, never the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from data_prep.ink import Ink


@dataclass(frozen=True)
class CorpusItem:
    utt_id: str
    speaker: str
    path: Path  # the input file (audio or pen strokes)
    labels: tuple[str, ...]  # training label symbols
    # A part of the file (Kaldi ``segments``, manifest start/end), in seconds; None = from the start / to the end.
    start: float | None = None
    end: float | None = None
    command: str | None = None  # a Kaldi wav.scp pipe ("sox x.flac -t wav - |") that writes the audio to stdout
    # The file's channels to keep (averaged when several), e.g. one talker's channel of a Lhotse recording;
    # None = every channel, averaged.
    channels: tuple[int, ...] | None = None
    # A cell of a table file that holds the audio bytes (Hugging Face arrow/parquet): (column, row); None = the
    # path is the audio file itself.
    cell: tuple[str, int] | None = None
    # Which part of a file holding many items the item is (UNIPEN: a segment's components "0-4"), for ``read``.
    part: str | None = None
    # The word transcript when the reader knows it (its labels may be phones). A multi-corpus recipe compares it,
    # normalised, across corpora to keep dev/test sentences out of training; "" = compare the labels instead.
    text: str = ""

    def audio_options(self) -> dict:
        """The keyword arguments (beyond the path) a source's ``read`` needs for this item."""
        opts = {"start": self.start, "end": self.end, "command": self.command, "channels": self.channels,
                "cell": self.cell, "part": self.part}
        return {k: v for k, v in opts.items() if v is not None}


@dataclass
class SplitItems:
    items: list[CorpusItem]
    skipped: list[tuple[str, str]]  # (file, reason)
    # Counts worth reporting that are not skips, {what: count}: e.g. words pronounced by espeak-ng because no
    # lexicon has them (data_prep/recorded.py).
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Waveform:
    """Mono float32 samples in [-1, 1] at their own sample rate (features resample to the configured one)."""

    samples: np.ndarray
    rate: int


RawInput = Waveform | Ink
ScoreMapping = Callable[[list[str]], list[str]]


@runtime_checkable
class CorpusSource(Protocol):
    """What a ``corpus.type`` provides. Class attributes:

    - ``kind``: the recipe's ``corpus.type``;
    - ``default_units``: the output units when ``corpus.units`` is empty (``phones``, ``chars``);
    - ``metric``: the main error rate's name (``PER``, ``CER``, ``WER``) -- scoring uses it in every report;
    - ``extra_metrics``: further rates reported beside it, {name: symbol mapping before alignment}.
    """

    kind: ClassVar[str]
    default_units: ClassVar[str]
    metric: ClassVar[str]
    extra_metrics: ClassVar[Mapping[str, ScoreMapping]]
    root: Path

    @classmethod
    def from_recipe(cls, root: Path, corpus: Any) -> CorpusSource:
        """Open the corpus at ``root`` with the settings of a recipe's corpus section (units, lexicon, ...)."""
        ...

    def tokens(self) -> list[str]:
        """The label inventory (the model's outputs besides blank)."""
        ...

    def split(self, name: str) -> SplitItems:
        """The labelled items of a split, and what was skipped (with the reason)."""
        ...

    @staticmethod
    def read(path: str, **options: Any) -> RawInput:
        """The raw input of one item (``options``: :meth:`CorpusItem.audio_options`). Runs in prep's worker
        processes, so it is a static method (picklable by name). Bad files raise ``CorpusError``."""
        ...

    @classmethod
    def scorer(cls, units: str) -> ScoreMapping:
        """The mapping applied to references and hypotheses before scoring, for output ``units``."""
        ...


SOURCES: dict[str, type[CorpusSource]] = {}


def register_source(cls: type) -> type:
    """Class decorator: make a corpus source available to recipes as ``corpus.type: <cls.kind>``."""
    SOURCES[cls.kind] = cls
    return cls
