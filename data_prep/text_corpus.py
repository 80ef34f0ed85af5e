"""What the Kaldi, LibriSpeech and manifest readers share: utterances with a text transcript, output units fitted
on the training text, and audio that may be a part of a file (segments) or the output of a wav.scp pipe.

Each reader only lists a split (``list_split(name) -> Listing``); this module turns that listing into labelled
:class:`~data_prep.sources.CorpusItem` s, skipping (and saying why) what the units cannot express.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.audio import read_audio, read_audio_bytes
from data_prep.sources import CorpusItem, SplitItems, Waveform
from data_prep.units import FittedOnTrainingText, UnitError, make_units, tokens_to_words
from lstm_asr.errors import CorpusError

# A segment may end this far past the end of its file and be clipped (Kaldi's extract-segments allows 0.5 s; a
# frame shift is enough for rounding in the segment times while still catching segments from the wrong file).
SEGMENT_OVERSHOOT_S = 0.02


@dataclass
class Utterance:
    utt_id: str
    speaker: str
    path: str  # audio file; for a wav.scp pipe, "<wav.scp>:<recording id>"
    text: str
    start: float | None = None
    end: float | None = None
    command: str | None = None
    channels: tuple[int, ...] | None = None  # the file's channels to keep (averaged); None = all
    cell: tuple[str, int] | None = None  # (column, row) of a table file holding the audio bytes


@dataclass
class Listing:
    utterances: list[Utterance] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or id, reason)


def run_command(command: str, what: str, channels: tuple[int, ...] | None = None) -> tuple[np.ndarray, int]:
    """Run a wav.scp pipe (``cmd args |``) and decode the audio it writes to stdout."""
    cmd = command.rstrip().removesuffix("|")
    try:
        done = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CorpusError(what, f"command failed: {exc}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip().splitlines()
        raise CorpusError(what, f"command exited {done.returncode}: {err[-1] if err else cmd}")
    if not done.stdout:
        raise CorpusError(what, "command output is not audio (it wrote nothing)")
    try:
        return read_audio_bytes(done.stdout, what, channels)
    except CorpusError as exc:
        raise CorpusError(what, f"command output is not audio ({exc.problem})") from None


def read_segment(path: str, start: float | None = None, end: float | None = None,
                 command: str | None = None, channels: tuple[int, ...] | None = None) -> Waveform:
    """The audio of a file (its ``channels``, averaged; None: all), a part of it (seconds), or a pipe's output.
    Runs in prep's worker processes.

    A segment that starts after the end of the file, or ends more than ``SEGMENT_OVERSHOOT_S`` past it, is a
    CorpusError (prep skips and counts it): its transcript cannot match the audio that is there.
    """
    samples, rate = run_command(command, path, channels) if command else read_audio(path, channels)
    return cut_segment(samples, rate, start, end, path)


def cut_segment(samples: np.ndarray, rate: int, start: float | None, end: float | None, path: str) -> Waveform:
    """The part ``start``-``end`` (seconds; None or a negative end: to the end) of mono samples."""
    if start is not None or end is not None:
        dur = len(samples) / rate
        s = start or 0.0
        e = dur if end is None or end < 0 else end
        if s >= dur or e > dur + SEGMENT_OVERSHOOT_S:
            raise CorpusError(path, f"segment {s:.2f}-{e:.2f} s runs past the end of the audio ({dur:.2f} s)")
        samples = samples[int(round(s * rate)) : int(round(min(e, dur) * rate))]
    return Waveform(np.ascontiguousarray(samples), rate)


def check_unique(ids: list[tuple[str, int]], path: Path) -> None:
    """One-line error on the first duplicate utterance id (``ids``: (id, line number))."""
    first: dict[str, int] = {}
    for utt, line in ids:
        if utt in first:
            raise CorpusError(path, f"line {line}: duplicate utterance id {utt!r} (first on line {first[utt]})")
        first[utt] = line


class TextCorpusSource(FittedOnTrainingText):
    """Base of the sources whose transcripts are text; subclasses define ``kind`` and ``list_split``."""

    kind = ""
    default_units = "chars"  # when the recipe leaves corpus.units empty
    metric = ""  # WER for characters and BPE, PER for phones: scoring decides from the units
    extra_metrics: dict = {}
    read = staticmethod(read_segment)

    def __init__(self, root: Path, units: str = "chars", lexicon: str = "", bpe_vocab_size: int = 100,
                 allow_commands: bool = False, train_split: str = "train") -> None:
        self.root = Path(root)
        self.units_name = units or self.default_units
        self.units = make_units(self.units_name, lexicon, bpe_vocab_size)
        self.allow_commands = allow_commands
        self.train_split = train_split
        self._listings: dict[str, Listing] = {}

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> TextCorpusSource:
        """Build from a recipe's corpus section (None: the defaults)."""
        if corpus is None:
            return cls(root)
        return cls(root, **cls.text_options(corpus), allow_commands=corpus.allow_commands)

    @staticmethod
    def text_options(corpus) -> dict:
        """What every text corpus takes from a recipe's corpus section (the units and the training split), as
        keyword arguments of the constructor; a subclass's ``from_recipe`` adds its own."""
        return {"units": corpus.units, "lexicon": corpus.lexicon, "bpe_vocab_size": corpus.bpe_vocab_size,
                "train_split": corpus.train_split}

    def list_split(self, name: str) -> Listing:
        raise NotImplementedError

    def listing(self, name: str) -> Listing:
        if name not in self._listings:
            self._listings[name] = self.list_split(name)
        return self._listings[name]

    def training_texts(self) -> list[str]:
        """The training split's transcripts (what fitted units learn from); none for a corpus that a multi-corpus
        recipe only tests or develops on (``train_split: ""``): its labels keep every symbol, scored as they are."""
        return [u.text for u in self.listing(self.train_split).utterances] if self.train_split else []

    def split(self, name: str) -> SplitItems:
        """A split's utterances; symbols outside the training inventory skip a training utterance and stay in any
        other split's labels (a reference, scored: errors no model trained here can avoid)."""
        self._fit()
        listing = self.listing(name)
        items, skipped = [], list(listing.skipped)
        for u in listing.utterances:
            try:
                labels = self.units.labels(u.text, keep_unknown=name != self.train_split)
            except UnitError as exc:
                skipped.append((f"{u.path} ({u.utt_id})" if u.start is not None else u.path, str(exc)))
                continue
            items.append(CorpusItem(u.utt_id, u.speaker, Path(u.path), labels, u.start, u.end, u.command, u.channels,
                                    u.cell, text=u.text))
        return SplitItems(items, skipped)

    @staticmethod
    def score_units(symbols: list[str]) -> list[str]:
        return list(symbols)

    @classmethod
    def scorer(cls, units: str = ""):
        """Character and BPE outputs are scored as words (WER); phones as phones."""
        units = units or cls.default_units
        return lambda symbols: tokens_to_words(symbols, units)
