"""Reader for the TIMIT corpus (LDC93S1) in its original layout.

``<root>/<usage>/<dialect>/<speaker>/<sentence>.<type>``, any letter case (LDC copies are upper case, some
mirrors lower case, some mix ``.WAV`` with ``.phn``). The tree is listed with one directory walk; no file is
opened while listing, so building a split of a full TIMIT copy takes milliseconds. Transcription readers
validate every line and raise :class:`~lstm_asr.errors.CorpusError` naming the file and line.

Splits follow Kaldi / Graves 2013: ``train`` = every TRAIN speaker, ``dev`` = the 50 speakers of
``dev_spk.list``, ``test`` = the 24 core-test speakers of ``core_test_spk.list``, ``complete_test`` = every
TEST speaker (168 on a full copy, 1344 utterances; note that it contains the dev speakers). SA1/SA2 are never
listed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from data_prep.audio import read_audio
from data_prep.phones import TIMIT_61, TRAIN_PHONES, fold_39
from data_prep.sources import CorpusItem, SplitItems, Waveform, register_source
from data_prep.sphere import MAGIC as SPHERE_MAGIC
from data_prep.sphere import read_sphere_header
from lstm_asr.errors import CorpusError

SPLITS = ("train", "dev", "test", "complete_test")
_SENTENCE_RE = re.compile(r"^s[aix]\d+$")
_DIALECT_RE = re.compile(r"^dr\d+$")
_KNOWN_EXTS = ("wav", "phn", "wrd", "txt")
# Transcriptions are a few hundred bytes; refuse to slurp something that is obviously not one.
_MAX_TEXT_BYTES = 1 << 20
_TIMIT_61_SET = frozenset(TIMIT_61)


@dataclass(frozen=True)
class TimitUtterance:
    """One TIMIT utterance: identifiers (lower case) and the paths of its files as found on disk."""

    utt_id: str
    speaker: str
    dialect: str
    usage: str
    sentence: str
    wav: Path
    phn: Path
    wrd: Path | None
    txt: Path | None


@dataclass
class SplitListing:
    """The utterances of a split, and what was left out of it with the reason.

    ``skipped`` holds (file, reason) for incomplete utterances (e.g. a .WAV without .PHN) and duplicate
    files; ``missing_speakers`` names the speakers of the split's list (dev/core test) that the corpus lacks.
    Neither is fatal.
    """

    utterances: list[TimitUtterance]
    skipped: list[tuple[Path, str]]
    missing_speakers: list[str] = field(default_factory=list)


def _load_speaker_list(name: str) -> tuple[str, ...]:
    text = resources.files("data_prep").joinpath("resources", name).read_text(encoding="utf-8")
    return tuple(line.strip().lower() for line in text.splitlines() if line.strip())


DEV_SPEAKERS: tuple[str, ...] = _load_speaker_list("dev_spk.list")
"""The 50 dev speakers (Kaldi's list), lower case."""
CORE_TEST_SPEAKERS: tuple[str, ...] = _load_speaker_list("core_test_spk.list")
"""The 24 core-test speakers, lower case."""


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TEXT_BYTES + 1)
    except OSError as e:
        raise CorpusError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) > _MAX_TEXT_BYTES:
        raise CorpusError(path, f"larger than {_MAX_TEXT_BYTES} bytes; not a TIMIT transcription")
    try:
        # TIMIT is ASCII; latin-1 would accept anything, so decode strictly to catch binary garbage.
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(path, f"not a text file (byte {e.start} is not valid UTF-8)") from None


def _read_segments(
    path: Path, kind: str, allow_overlap: bool, vocabulary: frozenset[str] | None = None
) -> list[tuple[int, int, str]]:
    """Parse ``<begin> <end> <label>`` lines with the checks shared by .PHN and .WRD."""
    path = Path(path)
    segments: list[tuple[int, int, str]] = []
    prev_begin, prev_end = 0, 0
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue  # blank lines (often a trailing one) carry nothing
        if len(fields) != 3:
            raise CorpusError(path, f"line {lineno}: expected '<begin> <end> <{kind}>', got {len(fields)} fields")
        try:
            begin, end = int(fields[0]), int(fields[1])
        except ValueError:
            problem = f"line {lineno}: sample times must be integers, got {line.strip()!r}"
            raise CorpusError(path, problem) from None
        label = fields[2]
        if vocabulary is not None and label not in vocabulary:
            raise CorpusError(path, f"line {lineno}: unknown {kind} symbol {label!r} (not a TIMIT phone)")
        if begin < 0 or begin >= end:
            raise CorpusError(path, f"line {lineno}: bad segment {begin}..{end} (need 0 <= begin < end)")
        if begin < prev_begin:
            raise CorpusError(path, f"line {lineno}: begin {begin} is before the previous begin {prev_begin}")
        if not allow_overlap and begin < prev_end:
            raise CorpusError(path, f"line {lineno}: begin {begin} overlaps the previous end {prev_end}")
        segments.append((begin, end, label))
        prev_begin, prev_end = begin, end
    if not segments:
        raise CorpusError(path, f"no {kind} segments")
    return segments


def read_phn(path: str | Path) -> list[tuple[int, int, str]]:
    """Read a .PHN file as (begin_sample, end_sample, phone) triples, validated.

    Each line needs 3 fields, integer times with begin < end, begins in order with no overlap of the previous
    segment, and a symbol from the 61-phone set. Raises CorpusError naming file, line and problem.
    """
    return _read_segments(Path(path), "phone", allow_overlap=False, vocabulary=_TIMIT_61_SET)


def read_wrd(path: str | Path) -> list[tuple[int, int, str]]:
    """Read a .WRD file as (begin_sample, end_sample, word) triples.

    Same checks as :func:`read_phn` except that words may overlap (TIMIT's word boundaries sometimes share a
    phone) and any word is accepted.
    """
    return _read_segments(Path(path), "word", allow_overlap=True)


def read_txt(path: str | Path) -> str:
    """Read a .TXT file (``<begin> <end> <sentence>``) and return the sentence text."""
    path = Path(path)
    lines = [line for line in _read_text(path).splitlines() if line.strip()]
    if not lines:
        raise CorpusError(path, "empty transcription")
    fields = lines[0].split(None, 2)
    if len(fields) < 3:
        raise CorpusError(path, "line 1: expected '<begin> <end> <text>'")
    try:
        int(fields[0]), int(fields[1])
    except ValueError:
        raise CorpusError(path, f"line 1: sample times must be integers, got {lines[0].strip()!r}") from None
    return fields[2].strip()


def phone_labels(utt: TimitUtterance) -> list[str]:
    """The utterance's .PHN symbols in order, with the glottal stop ``q`` removed (the 60-phone set)."""
    return [sym for _, _, sym in read_phn(utt.phn) if sym != "q"]


# split -> (usage folder, listed speakers or None for "every speaker in that folder")
_SPLIT_SPEAKERS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "train": ("train", None),
    "dev": ("test", DEV_SPEAKERS),
    "test": ("test", CORE_TEST_SPEAKERS),
    "complete_test": ("test", None),
}


@dataclass
class _Speaker:
    usage: str
    dialect: str
    name: str
    folder: Path
    # sentence -> extension -> paths found (several when e.g. SA1.WAV and sa1.wav both exist)
    files: dict[str, dict[str, list[Path]]] = field(default_factory=dict)


class TimitCorpus:
    """A TIMIT tree on disk. Construction walks it once; :meth:`split` then only filters."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise CorpusError(self.root, "TIMIT root does not exist or is not a directory")
        self._usage_dirs = self._find_usage_dirs()
        self._speakers: dict[tuple[str, str], _Speaker] = {}
        self._walk()

    def _find_usage_dirs(self) -> dict[str, Path]:
        try:
            children = sorted(p for p in self.root.iterdir() if p.is_dir())
        except OSError as e:
            raise CorpusError(self.root, f"cannot list: {e.strerror or e}") from None
        found: dict[str, Path] = {}
        for child in children:
            key = child.name.lower()
            if key in ("train", "test") and key not in found:
                found[key] = child
        if not found:
            nested = [c for c in children if any(g.name.lower() in ("train", "test") for g in _subdirs(c))]
            hint = f"; did you mean {nested[0]}?" if nested else ""
            raise CorpusError(self.root, f"no TRAIN or TEST folder: not a TIMIT root{hint}")
        return found

    def _walk(self) -> None:
        for usage, usage_dir in self._usage_dirs.items():
            # Symlinked speaker folders (link farms) are common; depth is capped at 2 so no cycle is possible.
            for dirpath, dirnames, filenames in os.walk(usage_dir, followlinks=True):
                dirnames.sort()
                rel = Path(dirpath).relative_to(usage_dir).parts
                if len(rel) >= 2:
                    dirnames.clear()  # speaker folders hold files only; don't descend further
                if len(rel) != 2 or not _DIALECT_RE.match(rel[0].lower()):
                    continue
                dialect, name = rel[0].lower(), rel[1].lower()
                spk = self._speakers.setdefault((usage, name), _Speaker(usage, dialect, name, Path(dirpath)))
                for fname in sorted(filenames):
                    stem, dot, ext = fname.rpartition(".")
                    if not dot or ext.lower() not in _KNOWN_EXTS or not _SENTENCE_RE.match(stem.lower()):
                        continue
                    spk.files.setdefault(stem.lower(), {}).setdefault(ext.lower(), []).append(Path(dirpath, fname))

    def speakers(self, usage: str) -> list[str]:
        """Lower-case names of the speakers found under ``usage`` ("train" or "test"), sorted."""
        return sorted(name for (u, name) in self._speakers if u == usage)

    def split(self, name: str) -> SplitListing:
        """List the utterances of split ``name`` (one of :data:`SPLITS`), sorted by utt_id, SA excluded."""
        if name not in _SPLIT_SPEAKERS:
            raise ValueError(f"unknown TIMIT split {name!r}; expected one of {', '.join(SPLITS)}")
        usage, wanted = _SPLIT_SPEAKERS[name]
        utterances: list[TimitUtterance] = []
        skipped: list[tuple[Path, str]] = []
        missing: list[str] = []
        names = self.speakers(usage) if wanted is None else sorted(wanted)
        for spk_name in names:
            spk = self._speakers.get((usage, spk_name))
            if spk is None:
                # Not fatal (a partial copy still trains), but the caller should warn: numbers on a
                # partial dev/test set are not comparable with published ones.
                missing.append(spk_name)
                continue
            self._collect(spk, utterances, skipped)
        utterances.sort(key=lambda u: u.utt_id)
        return SplitListing(utterances=utterances, skipped=skipped, missing_speakers=missing)

    @staticmethod
    def _collect(spk: _Speaker, out: list[TimitUtterance], skipped: list[tuple[Path, str]]) -> None:
        for sentence in sorted(spk.files):
            if sentence.startswith("sa"):
                continue
            exts = spk.files[sentence]
            for paths in exts.values():
                for extra in paths[1:]:
                    skipped.append((extra, f"duplicate of {paths[0].name} (names differ only in case)"))
            wav, phn = exts.get("wav", [None])[0], exts.get("phn", [None])[0]
            if wav is None or phn is None:
                # Name the file that is there, so the user sees which utterance is incomplete.
                present = wav or phn or next(iter(exts.values()))[0]
                skipped.append((present, "no .WAV audio" if wav is None else "no .PHN transcription"))
                continue
            out.append(
                TimitUtterance(
                    utt_id=f"{spk.name}_{sentence}",
                    speaker=spk.name,
                    dialect=spk.dialect,
                    usage=spk.usage,
                    sentence=sentence,
                    wav=wav,
                    phn=phn,
                    wrd=exts.get("wrd", [None])[0],
                    txt=exts.get("txt", [None])[0],
                )
            )


def _is_sphere(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SPHERE_MAGIC)) == SPHERE_MAGIC
    except OSError:
        return False


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir()]
    except OSError:
        return []


@register_source
class TimitSource:
    """TIMIT (or a generated corpus in its layout) for prep and scoring: 60 training phones (q removed), scored on
    the 39 folded classes."""

    kind = "timit"
    default_units = "phones"
    metric = "PER"
    extra_metrics: dict = {}

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.corpus = TimitCorpus(self.root)

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> TimitSource:
        return cls(root)  # TIMIT has one labelling: its .PHN files

    def tokens(self) -> list[str]:
        return list(TRAIN_PHONES)

    def split(self, name: str) -> SplitItems:
        listing = self.corpus.split(name)
        items, skipped = [], [(str(p), why) for p, why in listing.skipped]
        for utt in listing.utterances:
            try:
                labels = tuple(phone_labels(utt))
            except CorpusError as exc:
                skipped.append((str(exc.path), exc.problem))
                continue
            try:  # the sentence, for keeping test sentences out of other corpora's training (multi-corpus)
                text = read_txt(utt.txt) if utt.txt is not None else ""
            except CorpusError:
                text = ""
            items.append(CorpusItem(utt.utt_id, utt.speaker, utt.wav, labels, text=text))
        return SplitItems(items, skipped)

    @staticmethod
    def read(path: str) -> Waveform:
        return Waveform(*read_audio(path))

    @staticmethod
    def timed_labels(item: CorpusItem) -> list[tuple[str, float, float]]:
        """The item's labels with their times from its .PHN file: (phone, start s, duration s), q removed. The
        corpus exporter writes them as a Lhotse phone alignment."""
        phn = item.path.with_suffix(".PHN" if item.path.suffix.isupper() else ".phn")
        if not phn.is_file():
            phn = next((p for p in item.path.parent.iterdir() if p.stem.lower() == item.path.stem.lower()
                        and p.suffix.lower() == ".phn"), phn)
        rate = read_sphere_header(item.path).sample_rate if _is_sphere(item.path) else read_audio(item.path)[1]
        return [(sym, b / rate, (e - b) / rate) for b, e, sym in read_phn(phn) if sym != "q"]

    @staticmethod
    def score_units(symbols: list[str]) -> list[str]:
        """Fold 61/60 TIMIT phones to the 39 scoring classes (Lee & Hon 1989); q is deleted."""
        return fold_39(symbols)

    @classmethod
    def scorer(cls, units: str = ""):
        return cls.score_units
