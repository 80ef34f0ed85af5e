"""What the readers of recorded speech corpora share (festvox ARCTIC voices, audio folders, speechocean762): word
transcripts turned into TIMIT-61 phone labels, fixed splits where the corpus has none, and audio of any rate and
channel count.

Output units ``phones`` (the default) are the generated TIMIT corpus's 60 training phones, scored on the 39 folded
classes, so recorded and generated speech train one model and are scored alike. Phones come from, in order, a
corpus's own phone labels (ARCTIC's ``lab/`` files, speechocean762's ``text-phone``), then the words through
:class:`data_prep.lexicon.Pronouncer`. ``chars`` and ``bpe`` units work as for any text corpus.

A subclass lists every recording once (:meth:`RecordedSpeechSource.recordings`) with the sentence it reads;
:class:`data_prep.heldout.HeldOut` puts each into train, dev or test (see there for why by hash). Audio is read
through :func:`data_prep.audio.read_audio` (any rate, channels averaged to mono); prep resamples it to the recipe's
rate.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from data_prep.arpabet import utterance_labels
from data_prep.heldout import DROPPED, SPLIT_NAMES, HeldOut
from data_prep.lexicon import LexiconStats, Pronouncer, PronunciationError
from data_prep.phones import TRAIN_PHONES, fold_39
from data_prep.sources import CorpusItem, SplitItems
from data_prep.units import Units, read_lexicon, tokens_to_words
from lstm_asr.errors import CorpusError, LstmAsrError

from .text_corpus import Listing, TextCorpusSource, Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
_PROMPT_FESTIVAL = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')


@dataclass
class Recording(Utterance):
    """An utterance with the sentence its split is decided by (the prompt it reads, else its own transcript)."""

    sentence: str = ""


class TimitPhoneUnits(Units):
    """The generated TIMIT corpus's 60 training phones; the labels come from the source, not from the text."""

    name = "phones"

    def fit(self, texts: list[str]) -> None:
        pass  # a fixed inventory: recorded and generated corpora share it

    @property
    def inventory(self) -> list[str]:
        return list(TRAIN_PHONES)

    def labels(self, text: str, keep_unknown: bool = False) -> tuple[str, ...]:
        raise NotImplementedError("recorded sources label items themselves (RecordedSpeechSource.split)")


def read_prompts(path: Path) -> dict[str, str]:
    """A prompts file as {id: text}: festival's ``( arctic_a0001 "Author of ..." )`` lines (``txt.done.data``,
    ``cmuarctic.data``) or ``<id> <text>`` lines (tab or space). A line of neither form is a one-line error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CorpusError(path, "prompts file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read prompts ({exc})") from None
    prompts: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _PROMPT_FESTIVAL.match(line.strip())
        if m:
            pid, text = m.group(1), m.group(2).replace('\\"', '"')
        elif line.lstrip().startswith("("):
            raise CorpusError(path, f'line {n}: expected ( id "text" ), got {line.strip()[:60]!r}')
        else:
            parts = line.strip().split(maxsplit=1)
            if len(parts) < 2:
                raise CorpusError(path, f"line {n}: expected '<id> <text>' or ( id \"text\" ), got {line.strip()!r}")
            pid, text = parts
        if pid in prompts:
            raise CorpusError(path, f"line {n}: duplicate prompt id {pid!r}")
        prompts[pid] = text.strip()
    if not prompts:
        raise CorpusError(path, "no prompts in the file")
    return prompts


def prompt_for(stem: str, prompts: dict[str, str]) -> str | None:
    """The prompt id a recording's file stem names: the stem itself, or the longest id it starts with followed by
    ``_`` or ``-`` (Kathleen's ``arctic_a0001_1592748574`` is a take of ``arctic_a0001``)."""
    if stem in prompts:
        return stem
    best = None
    for sep in ("_", "-"):
        head = stem
        while sep in head:
            head = head.rsplit(sep, 1)[0]
            if head in prompts and (best is None or len(head) > len(best)):
                best = head
                break
    return best


class RecordedSpeechSource(TextCorpusSource):
    """Base of the recorded-speech readers: subclasses set ``kind`` and list :meth:`recordings`."""

    kind = ""
    default_units = "phones"

    def __init__(self, root: Path, units: str = "phones", lexicon: str = "", bpe_vocab_size: int = 100,
                 train_split: str = "train", heldout: HeldOut | None = None, prompts: str = "",
                 word_fallback: str = "espeak") -> None:
        units = units or self.default_units
        super().__init__(root, units=units if units != "phones" else "chars", bpe_vocab_size=bpe_vocab_size,
                         train_split=train_split)
        self.units_name = units
        if units == "phones":
            self.units = TimitPhoneUnits()
        self.heldout = heldout or HeldOut()
        self.prompts_path = self._resolve(prompts) if prompts else None
        self.lexicon_path = self._resolve(lexicon) if lexicon else None
        self.word_fallback = word_fallback
        self._pronouncer: Pronouncer | None = None
        self._all: Listing | None = None

    def _resolve(self, name: str) -> Path:
        """A file the recipe names: as given when it exists (absolute, or from the current folder), else inside
        the corpus folder."""
        p = Path(name)
        return p if p.is_absolute() or p.exists() else self.root / p

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> RecordedSpeechSource:
        if corpus is None:
            return cls(root)
        try:
            heldout = HeldOut(corpus.split_by, corpus.dev_share, corpus.test_share, tuple(corpus.test_speakers))
        except ValueError as exc:
            raise LstmAsrError(f"corpus: {exc}") from None
        return cls(root, **cls.text_options(corpus), heldout=heldout, prompts=corpus.prompts,
                   word_fallback=corpus.word_fallback)

    # --- what a subclass provides -----------------------------------------------------------------------------
    def recordings(self) -> Listing:
        """Every usable recording (as :class:`Recording`, with its sentence) and what was skipped, once."""
        raise NotImplementedError

    def corpus_lexicon(self) -> tuple[dict[str, tuple[str, ...]] | None, bool]:
        """The corpus's own lexicon, if it ships one, and whether its stress marks are trusted."""
        return None, False

    def own_phones(self, utt: Utterance) -> tuple[str, ...] | None:
        """Labels from the corpus's own phone transcription of ``utt`` (None: use the words)."""
        return None

    # --- the shared machinery ---------------------------------------------------------------------------------
    @property
    def pronouncer(self) -> Pronouncer:
        if self._pronouncer is None:
            if self.lexicon_path is not None:
                lexicon, stress = read_lexicon(self.lexicon_path), True
            else:
                lexicon, stress = self.corpus_lexicon()
            self._pronouncer = Pronouncer(lexicon, corpus_stress=stress, fallback=self.word_fallback)
        return self._pronouncer

    def list_split(self, name: str) -> Listing:
        if name not in SPLIT_NAMES:
            raise CorpusError(self.root, f"no split {name!r}: a {self.kind} corpus is split into "
                              f"{', '.join(SPLIT_NAMES)} (corpus.split_by, corpus.dev_share, corpus.test_share)")
        if self._all is None:
            self._all = self.recordings()
        out = Listing(skipped=list(self._all.skipped) if name == "train" else [])
        for u in self._all.utterances:
            sentence = u.sentence if isinstance(u, Recording) and u.sentence else u.text
            split = self.heldout.assign(u.speaker, sentence)
            if split == name:
                out.utterances.append(u)
            elif split == DROPPED and name == "train":  # counted once, with the training split
                out.skipped.append((u.path, "left out: its speaker and its sentence are held out for different "
                                    "splits"))
        return out

    def split(self, name: str) -> SplitItems:
        if self.units_name != "phones":
            return super().split(name)
        listing = self.listing(name)
        items, skipped = [], list(listing.skipped)
        pron = self.pronouncer
        pron.stats = LexiconStats()  # this split's counts
        own = Counter()
        for u in listing.utterances:
            try:
                labels = self.own_phones(u)
                if labels is None:
                    labels = utterance_labels(pron.words(u.text))
                else:
                    own["utterances with the corpus's own phone labels"] += 1
            except PronunciationError as exc:
                skipped.append((f"{u.path} ({exc.word})", str(exc)))
                continue
            except CorpusError as exc:
                skipped.append((str(exc.path), exc.problem))
                continue
            items.append(CorpusItem(u.utt_id, u.speaker, Path(u.path), labels, u.start, u.end, u.command))
        notes = {**dict(own), **pron.stats.notes()}
        self.lexicon_stats = pron.stats
        return SplitItems(items, skipped, notes)

    @classmethod
    def scorer(cls, units: str = ""):
        """Phones: the 60 training phones folded to the 39 scoring classes; characters and BPE: words."""
        units = units or cls.default_units
        if units == "phones":
            return fold_39
        return lambda symbols: tokens_to_words(symbols, units)


def find_audio(folder: Path, max_depth: int = 6) -> list[Path]:
    """Audio files under ``folder`` (:data:`AUDIO_SUFFIXES` in any letter case), sorted. Symlinked folders are
    followed (a folder of links to several corpora's speakers is one corpus), at most ``max_depth`` deep so a link
    cycle ends."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        if len(Path(dirpath).relative_to(folder).parts) >= max_depth:
            dirnames.clear()
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in filenames if Path(f).suffix.lower() in AUDIO_SUFFIXES]
    return sorted(p for p in found if p.is_file())
