"""espeak-ng through its C library (``libespeak-ng``, Debian main), with the engine's own phone and word timings.

The library reports, beside the audio, a phoneme event at the sample where each phoneme starts and a word event
at the sample where each word starts (``espeakINITIALIZE_PHONEME_EVENTS``), so phone boundaries come from the
engine, not from an aligner. Phonemes are espeak's English mnemonics (``D``, ``@``, ``aI``, ``tS``, ...), mapped
here to the CMU radio set the other engines speak (:data:`TO_RADIO`), with two TIMIT-61 symbols the engine
distinguishes and the radio set does not: the flap ``dx`` (espeak ``t#``) and the glottal stop ``q`` (``?``).
An r-coloured vowel (``e@`` "air") becomes vowel + ``r`` split 60/40 of its duration, the syllabic ``@L``/``n-``
become ``ax`` + ``l``/``n`` split 40/60: the engine gives one segment for each, so that split is a heuristic.

Voices are ``en-us`` with espeak's voice variants (``+m3``, ``+f2``: other pitch, formants, breathiness), each a
talker of its own in the generated corpus.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Sequence

import numpy as np

from lstm_asr.errors import LstmAsrError

APT_PACKAGE = "espeak-ng"

# espeak-ng's event types (speak_lib.h) and options.
_EV_END_LIST, _EV_WORD, _EV_PHONEME = 0, 1, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_POS_CHARACTER = 1
_CHARS_UTF8 = 1

# espeak-ng English phoneme mnemonics -> radio phones (CMU set, lower case) or TIMIT-61 symbols (dx, q).
# Several phones: the engine's segment is split by the fractions of :data:`SPLIT_FRACTIONS`.
TO_RADIO: dict[str, tuple[str, ...]] = {
    # vowels
    "@": ("ax",), "@2": ("ax",), "@5": ("ax",), "@-": ("ax",), "a#": ("ax",), "3": ("er",), "3:": ("er",),
    "a": ("ae",), "aa": ("ae",), "A:": ("aa",), "0": ("aa",), "O:": ("ao",), "O": ("ao",), "O2": ("ao",),
    "E": ("eh",), "eI": ("ey",), "I": ("ih",), "I#": ("ih",), "I2": ("ih",), "i": ("iy",), "i:": ("iy",),
    "U": ("uh",), "u:": ("uw",), "V": ("ah",), "aI": ("ay",), "aU": ("aw",), "OI": ("oy",), "oU": ("ow",),
    # r-coloured vowels and vowel sequences (one segment from the engine)
    "A@": ("aa", "r"), "O@": ("ao", "r"), "o@": ("ao", "r"), "e@": ("eh", "r"), "i@": ("ih", "r"),
    "i@3": ("ih", "r"), "U@": ("uh", "r"), "aI@": ("ay", "er"), "aI3": ("ay", "er"), "aU@": ("aw", "er"),
    # syllabic consonants
    "@L": ("ax", "l"), "n-": ("ax", "n"), "m-": ("ax", "m"),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "t2": ("t",), "d": ("d",), "k": ("k",), "g": ("g",), "x": ("k",),
    "f": ("f",), "v": ("v",), "T": ("th",), "D": ("dh",), "s": ("s",), "z": ("z",), "S": ("sh",), "Z": ("zh",),
    "h": ("hh",), "m": ("m",), "n": ("n",), "N": ("ng",), "l": ("l",), "r": ("r",), "r-": ("r",), "w": ("w",),
    "W": ("w",), "j": ("y",), "tS": ("ch",), "dZ": ("jh",), "t#": ("dx",), "d#": ("dx",), "?": ("q",),
    # pauses
    "_": ("pau",), "_:": ("pau",), "_!": ("pau",),
}
# Marks the library reports as phonemes of no duration of their own (palatalisation ';', stress, language switch).
MARKS = frozenset({";", "'", ",", "%", "=", "_^_", "||", "|"})
SPLIT_FRACTIONS = {2: (0.6, 0.4)}
SYLLABIC = frozenset({"@L", "n-", "m-"})  # split 40/60: the consonant is the longer part


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def load_library() -> ctypes.CDLL:
    """The espeak-ng shared library (loaded, not initialised), or a one-line error naming the Debian package."""
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        raise LstmAsrError(f"the espeak-ng library is not installed; install it with: apt-get install -y "
                           f"--no-install-recommends {APT_PACKAGE}") from None


class _Engine:
    """One initialised library per process (espeak-ng keeps global state); the callback collects into lists."""

    def __init__(self) -> None:
        self.lib = load_library()
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_PHONEME_EVENTS)
        if self.rate <= 0:
            raise LstmAsrError("espeak-ng failed to initialise (espeak_Initialize returned an error)")
        self.audio: list[np.ndarray] = []
        self.events: list[tuple[int, int, int, int, str]] = []
        self.callback = _CALLBACK(self._collect)  # kept referenced: the library calls it
        self.lib.espeak_SetSynthCallback(self.callback)
        self.voice = ""
        self.pid = os.getpid()

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self.audio.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != _EV_END_LIST:
            e = events[i]
            if e.type in (_EV_WORD, _EV_PHONEME):
                name = bytes(e.id).split(b"\0")[0].decode("ascii", "replace") if e.type == _EV_PHONEME else ""
                self.events.append((e.type, e.sample, e.text_position, e.length, name))
            i += 1
        return 0

    def use_voice(self, voice: str) -> None:
        if voice != self.voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise LstmAsrError(f"espeak-ng has no voice {voice!r} (espeak-ng --voices=variant lists them)")
            self.voice = voice

    def speak(self, voice: str, text: str) -> tuple[np.ndarray, list[tuple[int, int, int, int, str]]]:
        global _SPOKE
        # From here on this process's library carries the utterance's state, and so would every child it forks.
        _SPOKE = True
        self.use_voice(voice)
        self.audio, self.events = [], []
        data = text.encode("utf-8")
        status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if status != 0:
            raise LstmAsrError(f"espeak-ng ({voice}) failed on {text!r} (error {status})")
        audio = np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)
        return audio, self.events

    def pronounce(self, word: str) -> list[str]:
        """The word's phonemes as the current voice's lexicon and rules give them (``espeak_TextToPhonemes``),
        mapped to radio phones, for splitting a word group the engine timed as one (see :func:`group_words`)."""
        fn = self.lib.espeak_TextToPhonemes
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        text = ctypes.c_char_p(word.encode("utf-8"))
        out = (fn(ctypes.byref(text), _CHARS_UTF8, ord("|") << 8) or b"").decode("ascii", "replace")
        names = [n.lstrip("'," ) for n in out.replace(" ", "|").split("|")]
        return [p for n in names if n and n not in MARKS for p in radio_phones(n) if p != "pau"]


_ENGINE: _Engine | None = None
# True in a process that synthesised audio (or was forked from one): its library state is no longer pristine.
_SPOKE = False


def has_spoken() -> bool:
    """True when this process, or the process it was forked from, synthesised audio with the library.

    Such a process must not fork espeak-ng children: they would inherit the state the earlier utterances left
    (the same text comes out different after other text). :func:`data_prep.tts.synthesize` refuses then."""
    return _SPOKE


def reset_libc_rand() -> None:
    """Put the C library's ``rand()`` back to its start-up state (``srand(1)``).

    espeak-ng 1.51 draws the noise of its breathy voice variants (``+f2``, ``+f3``, ``+f5``: ``breath`` in the
    variant file) from libc's ``rand()``, which it never seeds. A forked child inherits its parent's ``rand()``
    state, and any library in the parent may have drawn from it (PIL, onnxruntime, scipy, cuDNN all link it),
    so without this the same voice and text gave different audio depending on the parent's history. Seed 1 is
    glibc's own start-up state: corpora generated before this reset stay byte-identical."""
    ctypes.CDLL(None).srand(1)


def engine() -> _Engine:
    """This process's espeak-ng library (initialised on first use; a forked worker initialises its own)."""
    global _ENGINE
    if _ENGINE is None or _ENGINE.pid != os.getpid():
        _ENGINE = _Engine()
    return _ENGINE


def pronounce(word: str, voice: str = "en-us") -> list[str]:
    """A written word's phones as espeak-ng's lexicon and spelling rules for ``voice`` give them (radio phones and
    ``dx``/``q``, no pauses): the pronunciation of last resort for words no lexicon has (:mod:`data_prep.lexicon`).
    Raises :class:`UnmappedPhoneme` for a phoneme :data:`TO_RADIO` does not map."""
    eng = engine()
    eng.use_voice(voice)
    return eng.pronounce(word)


class UnmappedPhoneme(LstmAsrError):
    """espeak-ng spoke a phoneme mnemonic that :data:`TO_RADIO` does not map: the utterance has no honest labels.

    The corpus generator skips (and counts) such an utterance rather than guess a label or stop the whole run."""


def radio_phones(name: str) -> tuple[str, ...]:
    """The radio (or TIMIT) phones of an espeak-ng mnemonic; raises :class:`UnmappedPhoneme` for one not in
    :data:`TO_RADIO`."""
    if name in TO_RADIO:
        return TO_RADIO[name]
    raise UnmappedPhoneme(f"espeak-ng phoneme {name!r} has no mapping to TIMIT phones (data_prep/espeak_ng.py)")


def phone_segments(events: Sequence[tuple[int, int, int, int, str]], n: int) -> list[tuple[str, int, int]]:
    """(phone, start, end) in samples from the phoneme events, covering [0, n) without gaps.

    A phoneme lasts from its event to the next one; phonemes of no duration (two events at one sample) and marks
    are dropped; the audio before the first phoneme joins a leading pause; mapped sequences split the segment."""
    starts = [(s, name) for kind, s, _, _, name in events if kind == _EV_PHONEME and name not in MARKS]
    segs: list[tuple[str, int, int]] = []
    for k, (s, name) in enumerate(starts):
        e = starts[k + 1][0] if k + 1 < len(starts) else n
        s, e = min(max(s, 0), n), min(max(e, 0), n)
        if e <= s:
            continue
        phones = radio_phones(name)
        fracs = (0.4, 0.6) if name in SYLLABIC else SPLIT_FRACTIONS.get(len(phones), (1.0,))
        cut = s
        for i, (p, f) in enumerate(zip(phones, fracs, strict=True)):
            end = e if i == len(phones) - 1 else cut + round(f * (e - s))
            if end > cut:
                segs.append((p, cut, end))
            cut = end
    if not segs:
        return [("pau", 0, n)] if n > 0 else []
    if segs[0][1] > 0:  # the engine's lead-in before the first phoneme
        segs.insert(0, ("pau", 0, segs[0][1]))
    merged: list[tuple[str, int, int]] = []
    for p, s, e in segs:  # consecutive pauses ('_:' then '_') are one pause
        if merged and p == "pau" and merged[-1][0] == "pau":
            merged[-1] = ("pau", merged[-1][1], e)
        else:
            merged.append((p, s, e))
    last = merged[-1]
    merged[-1] = (last[0], last[1], n)
    return merged


def group_words(events: Sequence[tuple[int, int, int, int, str]], text: str) -> list[tuple[int, list[str]]]:
    """The prompt's whitespace tokens grouped under the word event that times them: (start sample, tokens).

    espeak-ng times unstressed function words together with their neighbour ("from the" is one word event), so a
    group can hold several tokens; tokens before the first event join it."""
    # A word event of no length (the library sends one at the end of some clauses) times nothing.
    starts = [(pos - 1, s) for kind, s, pos, length, _ in events if kind == _EV_WORD and length > 0]
    if not starts:
        return []
    groups: list[tuple[int, list[str]]] = [(s, []) for _, s in starts]
    offset = 0
    raw = text.encode("utf-8")
    for token in text.split():
        at = raw.index(token.encode("utf-8"), offset)
        offset = at + len(token.encode("utf-8"))
        k = max([i for i, (pos, _) in enumerate(starts) if pos <= at] or [0])
        groups[k][1].append(token)
    return [g for g in groups if g[1]]
