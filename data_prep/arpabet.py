"""ARPAbet (CMUdict, corpus lexicons) and festvox radio phones as TIMIT-61 label sequences, labelled the way the
generated TIMIT-style corpus is, so recorded and generated utterances teach a model the same symbols.

The conventions (:mod:`data_prep.synth_timit` labels generated speech with the same ones):

- stress digits are removed; ``AH0`` becomes ``ax`` when the lexicon's stress marks are trusted (CMUdict's are:
  festival, whose lexicon the generator's voices speak, says ``ax`` there too), else ``ah``. speechocean762 marks
  most vowels 0 (``ONE = W AH0 N``), so its phones keep ``ah``. The 39-class scoring folds ``ax`` into ``ah`` either
  way; the choice only matters for what the 60 training labels mean;
- every stop and affricate is a closure plus its release (``b`` -> ``bcl b``, ``ch`` -> ``tcl ch``), as TIMIT
  transcribers wrote them (the generator splits the engines' stops the same way); the closures fold to ``sil``;
- an utterance starts and ends with ``h#`` (TIMIT's edge silence); pauses inside come only from timed labels
  (festvox ``lab/`` files), never from words.

Festvox's radio phone set is ARPAbet in lower case plus ``ax``, ``pau`` and a few TIMIT-like extras (``axr``,
``dx``, ``el``, ``em``, ``en``, ``hv``, ``nx``: all TIMIT-61 symbols); ``ssil``, ``brth`` and ``sil`` are pauses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from data_prep.phones import TIMIT_61

ARPABET = frozenset("AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W "
                    "Y Z ZH".split())
"""The 39 ARPAbet phones of CMUdict (without stress digits)."""

CLOSURES = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "ch": "tcl", "jh": "dcl"}
"""Stops and affricates -> the closure TIMIT labels before their release."""

PAUSES = frozenset({"pau", "sil", "ssil", "brth", "h#", "sp"})
"""Label names festvox and aligners use for silence (and breath): a pause, or ``h#`` at the edges."""

_TIMIT = frozenset(TIMIT_61)


class PhoneSetError(ValueError):
    """A symbol that is not in the phone set it claims to be from; the message names it."""


def arpabet_phone(symbol: str, schwa_from_stress: bool = True) -> str:
    """One ARPAbet symbol (``AH0``, ``hh``, ``ER1``) as a TIMIT-61 symbol (``ax``, ``hh``, ``er``).

    Raises :class:`PhoneSetError` for a symbol that is not ARPAbet."""
    base = symbol.rstrip("0123456789").upper()
    if base not in ARPABET or len(symbol) - len(base) > 1:
        raise PhoneSetError(f"{symbol!r} is not an ARPAbet phone")
    if base == "AH" and schwa_from_stress and symbol.endswith("0"):
        return "ax"
    return base.lower()


def lexicon_phone(symbol: str, schwa_from_stress: bool = True) -> str:
    """A lexicon's phone: ARPAbet (:func:`arpabet_phone`) or, for lexicons written in TIMIT symbols, a TIMIT-61
    symbol as it is. Raises :class:`PhoneSetError` for anything else."""
    try:
        return arpabet_phone(symbol, schwa_from_stress)
    except PhoneSetError:
        if symbol in _TIMIT and symbol not in PAUSES and symbol != "q":
            return symbol
        raise PhoneSetError(f"{symbol!r} is neither an ARPAbet nor a TIMIT phone") from None


def radio_phone(symbol: str) -> str | None:
    """A festvox radio (or espeak-ng mapped) phone as a TIMIT-61 symbol; ``pau`` for pauses; None for the glottal
    stop ``q``, which the 60 training labels leave out. Raises :class:`PhoneSetError` for anything else."""
    p = symbol.lower()
    if p in PAUSES:
        return "pau"
    if p == "q":
        return None
    if p.upper() in ARPABET or p in _TIMIT:
        return p
    raise PhoneSetError(f"{symbol!r} is not a festvox radio or TIMIT phone")


def with_closures(phones: Iterable[str]) -> list[str]:
    """TIMIT's closure before every stop and affricate (``b`` -> ``bcl b``); other phones unchanged."""
    out: list[str] = []
    for p in phones:
        if p in CLOSURES:
            out.append(CLOSURES[p])
        out.append(p)
    return out


def utterance_labels(words: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The TIMIT-61 training labels of an utterance from its words' phones (TIMIT symbols, no closures yet):
    ``h#``, the phones with closures, ``h#``."""
    return ("h#", *with_closures(p for word in words for p in word), "h#")


def timed_labels(phones: Sequence[str]) -> tuple[str, ...]:
    """Training labels from a timed phone sequence (a festvox ``lab/`` file, already TIMIT symbols with ``pau``):
    pauses at the edges become ``h#`` (one each side; the utterance always has them), pauses inside stay ``pau``
    (runs of them are one), closures are added."""
    core = list(phones)
    while core and core[0] == "pau":
        core.pop(0)
    while core and core[-1] == "pau":
        core.pop()
    merged: list[str] = []
    for p in core:
        if not (p == "pau" and merged and merged[-1] == "pau"):
            merged.append(p)
    return ("h#", *with_closures(merged), "h#")
