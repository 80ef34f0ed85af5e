"""speechocean762 (OpenSLR 101): 5,000 English utterances of 250 non-native speakers, as Kaldi data dirs.

``corpus.path`` is the corpus folder: ``train/`` and ``test/`` (Kaldi data dirs, 125 speakers each; read by
:class:`data_prep.kaldi_dir.KaldiDirSource`), ``WAVE/SPEAKERnnnn/*.WAV`` (16 kHz; ``wav.scp`` names them relative to
the corpus folder, so they are found from there), and ``resource/``: ``text-phone`` (the canonical ARPAbet phones
of every word of every utterance, ``<utt>.<word index> W_B IY0_E`` with position marks) and ``lexicon.txt``.

Splits: ``test`` is the corpus's test set; ``dev`` is ``corpus.dev_share`` of the *training speakers* (chosen by
a hash of the speaker, :mod:`data_prep.heldout`), ``train`` the other training speakers, so no speaker is in two
splits. Phones: ``text-phone`` (position marks and stress removed; its stress marks are not CMUdict's, so
``AH0`` stays ``ah``: :mod:`data_prep.arpabet`), else the words through ``resource/lexicon.txt``, CMUdict and
espeak-ng (:mod:`data_prep.lexicon`).
"""

from __future__ import annotations

from pathlib import Path

from data_prep.arpabet import PhoneSetError, arpabet_phone, utterance_labels
from data_prep.kaldi_dir import KaldiDirSource, read_table
from data_prep.lexicon import lexicon_words
from data_prep.sources import register_source
from data_prep.units import read_lexicon
from lstm_asr.errors import CorpusError

from .recorded import RecordedSpeechSource
from .text_corpus import Listing, Utterance

_POSITION_MARKS = ("_B", "_I", "_E", "_S")


class _CorpusRelativeKaldi(KaldiDirSource):
    """speechocean762's data dirs: ``wav.scp`` paths are relative to the corpus folder, not the current one."""

    def audio_file(self, entry: str) -> str:
        p = Path(entry)
        return entry if p.is_absolute() or p.is_file() else str(self.root / p)


def read_text_phone(path: Path) -> dict[str, list[tuple[int, list[str]]]]:
    """``text-phone`` as {utterance: [(word index, ARPAbet phones), ...]} in word order (marks removed)."""
    out: dict[str, list[tuple[int, list[str]]]] = {}
    for key, (rest, n) in read_table(path).items():
        utt, dot, index = key.rpartition(".")
        if not dot or not index.isdigit():
            raise CorpusError(path, f"line {n}: expected '<utterance>.<word index> PH_B ...', got key {key!r}")
        phones = [p[:-2] if p.endswith(_POSITION_MARKS) else p for p in rest.split()]
        out.setdefault(utt, []).append((int(index), phones))
    for words in out.values():
        words.sort()
    return out


@register_source
class SpeechOcean762Source(RecordedSpeechSource):
    """speechocean762's Kaldi data dirs with its canonical phones."""

    kind = "speechocean762"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kaldi = _CorpusRelativeKaldi(self.root)
        self._text_phone: dict[str, list[tuple[int, list[str]]]] | None = None

    def list_split(self, name: str) -> Listing:
        if name == "test":
            return self.kaldi.list_split("test")
        if name not in ("train", "dev"):
            raise CorpusError(self.root, f"no split {name!r}: speechocean762 has train, dev (corpus.dev_share of "
                              "the training speakers) and test")
        listing = self.kaldi.list_split("train")
        keep = [u for u in listing.utterances
                if (self.heldout.speaker_bucket(u.speaker, test_allowed=False) == "dev") == (name == "dev")]
        return Listing(keep, listing.skipped if name == "train" else [])

    def corpus_lexicon(self) -> tuple[dict[str, tuple[str, ...]] | None, bool]:
        path = self.root / "resource" / "lexicon.txt"
        return (read_lexicon(path), False) if path.is_file() else (None, False)

    def own_phones(self, utt: Utterance) -> tuple[str, ...] | None:
        if self._text_phone is None:
            path = self.root / "resource" / "text-phone"
            self._text_phone = read_text_phone(path) if path.is_file() else {}
        words = self._text_phone.get(utt.utt_id)
        if not words or len(words) != len(lexicon_words(utt.text)):
            return None  # not transcribed there, or not word for word: the lexicon chain does it
        try:
            return utterance_labels([[arpabet_phone(p, False) for p in phones] for _, phones in words])
        except PhoneSetError as exc:
            raise CorpusError(self.root / "resource" / "text-phone", f"{utt.utt_id}: {exc}") from None
