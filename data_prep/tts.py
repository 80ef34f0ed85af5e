"""Drivers for the festival, flite and espeak-ng speech synthesisers that return audio with phone and word timings.

Both engines speak the CMU "radio" phone set (39 ARPAbet phones, lower case, no stress, plus ``pau``) and
report each phone's end time. A result is engine neutral: the waveform at the engine's native rate, the
phone list ``(phone, end_seconds)`` and the words as inclusive index ranges into that phone list, so a word
boundary is always a phone boundary and word timings can never disagree with the phones.

* festival: many utterances per ``festival -b`` process (start-up dominates); words come from the
  ``Token`` relation (one token per whitespace word of the prompt) and their daughter words' segments.
* flite: one process per utterance (``-psdur``). Flite reports no word timings, so each word's
  pronunciation is taken from flite's own ``t2p`` (same lexicon and letter-to-sound rules) and the word
  pronunciations are aligned to the phone string that was actually spoken (see :func:`align_words`).
* espeak-ng: its C library, in a fresh forked child per utterance (:mod:`data_prep.espeak_ng`); phoneme and
  word events carry the sample where each starts, so phones and words both come with the engine's own timings.
  Its voice variants (``en-us+m3``...) are talkers of their own.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.text_pool import normalise_words
from lstm_asr.errors import LstmAsrError

APT_PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite sox espeak-ng"
APT_COMMAND = f"apt-get install -y --no-install-recommends {APT_PACKAGES}"


@dataclass(frozen=True)
class Voice:
    """One synthesiser voice: engine, the engine's voice id, the recorded talker behind it and its sex."""

    name: str
    engine: str  # "festival" | "flite" | "espeak"
    voice_id: str  # festival: the voice_... function; flite: the -voice name; espeak: language+variant
    talker: str
    sex: str  # "M" | "F"


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("festival_kal", "festival", "voice_kal_diphone", "kal", "M"),
        Voice("flite_kal16", "flite", "kal16", "kal", "M"),
        Voice("festival_ked", "festival", "voice_ked_diphone", "ked", "M"),
        Voice("festival_slt", "festival", "voice_cmu_us_slt_arctic_hts", "slt", "F"),
        Voice("flite_slt", "flite", "slt", "slt", "F"),
        Voice("flite_rms", "flite", "rms", "rms", "M"),
        Voice("flite_awb", "flite", "awb", "awb", "M"),
        # espeak-ng's formant synthesiser with its voice variants: other pitch, formants, voicing; one talker each.
        *(Voice(f"espeak_{v}", "espeak", f"en-us+{v}", f"esp{v}", v[0].upper())
          for v in ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")),
    )
}
"""Every voice the generator can use, by name."""

ENGINES: tuple[str, ...] = ("festival", "flite", "espeak")
TALKERS: tuple[str, ...] = tuple(dict.fromkeys(v.talker for v in VOICES.values()))

# Where Debian installs each festival voice, and the package that provides it.
_FESTIVAL_VOICE_DIRS = {
    "voice_kal_diphone": ("/usr/share/festival/voices/english/kal_diphone", "festvox-kallpc16k"),
    "voice_ked_diphone": ("/usr/share/festival/voices/english/ked_diphone", "festvox-kdlpc16k"),
    "voice_cmu_us_slt_arctic_hts": (
        "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts",
        "festvox-us-slt-hts",
    ),
}


@dataclass
class Synthesis:
    """One synthesised utterance.

    ``phones``: radio phones with their end times in seconds (the first starts at 0), as the engine reported
    them. ``words``: ``(word, first_phone, last_phone)`` with inclusive indices into ``phones``, words spelt
    as :func:`data_prep.text_pool.normalise_words` spells the prompt.
    """

    audio: np.ndarray  # float32, mono
    rate: int
    phones: list[tuple[str, float]]
    words: list[tuple[str, int, int]]


def voices_for_talkers(talkers: Sequence[str]) -> list[Voice]:
    """All voices whose recorded talker is in ``talkers`` (in :data:`VOICES` order)."""
    unknown = sorted(set(talkers) - set(TALKERS))
    if unknown:
        raise LstmAsrError(f"unknown talker(s) {', '.join(unknown)}; known: {', '.join(TALKERS)}")
    return [v for v in VOICES.values() if v.talker in talkers]


def check_engines(voices: Sequence[Voice]) -> None:
    """Raise :class:`LstmAsrError` naming the apt-get command when a needed program or voice is missing."""
    needed = {"sox"}
    for v in voices:
        if v.engine == "espeak":
            from data_prep.espeak_ng import load_library

            load_library()  # raises, naming the package, when the library is missing
            continue
        needed.update({"festival"} if v.engine == "festival" else {"flite", "t2p"})
    for prog in sorted(needed):
        if shutil.which(prog) is None:
            raise LstmAsrError(
                f"the program '{prog}' is not installed; install the synthesisers with: {APT_COMMAND}"
            )
    for v in voices:
        if v.engine == "festival":
            path, package = _FESTIVAL_VOICE_DIRS[v.voice_id]
            if not Path(path).is_dir():
                raise LstmAsrError(
                    f"festival voice {v.voice_id} is not installed; install it with: "
                    f"apt-get install -y --no-install-recommends {package}"
                )


def synthesize(voice: Voice, texts: Sequence[str], workdir: Path) -> list[Synthesis]:
    """Synthesise every text with ``voice``; ``workdir`` is a scratch folder the caller owns."""
    workdir.mkdir(parents=True, exist_ok=True)
    if voice.engine == "festival":
        return _festival(voice, texts, workdir)
    if voice.engine == "espeak":
        return [_espeak(voice, text) for text in texts]
    return [_flite(voice, text, workdir / f"u{i}.wav") for i, text in enumerate(texts)]


# ----------------------------------------------------------------------------------------------- festival

_FESTIVAL_PRELUDE = """
(define (lstm_asr_synth text wavfile labfile)
  (let ((utt (eval (list 'Utterance 'Text text))) (fd nil))
    (utt.synth utt)
    (utt.save.wave utt wavfile 'riff)
    (set! fd (fopen labfile "w"))
    (mapcar (lambda (s) (format fd "P %s %f\\n" (item.name s) (item.feat s "end")))
            (utt.relation.items utt 'Segment))
    (mapcar (lambda (tk)
              (format fd "T %s\\n" (item.name tk))
              (mapcar (lambda (w)
                        (format fd "W %f %f\\n" (item.feat w "word_start") (item.feat w "word_end")))
                      (item.daughters tk)))
            (utt.relation.items utt 'Token))
    (fclose fd)))
"""


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival(voice: Voice, texts: Sequence[str], workdir: Path) -> list[Synthesis]:
    lines = [_FESTIVAL_PRELUDE, f"({voice.voice_id})"]
    for i, text in enumerate(texts):
        lines.append(f'(lstm_asr_synth {_scheme_string(text)} "{workdir}/u{i}.wav" "{workdir}/u{i}.lab")')
    script = workdir / "batch.scm"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
    results = []
    for i, text in enumerate(texts):
        lab, wav = workdir / f"u{i}.lab", workdir / f"u{i}.wav"
        if not lab.is_file() or not wav.is_file():
            err = (proc.stderr or proc.stdout).strip().splitlines()
            raise LstmAsrError(
                f"festival ({voice.voice_id}) failed on {text!r}: {err[-1] if err else 'no output'}"
            )
        audio, rate = sf.read(wav, dtype="float32", always_2d=False)
        phones, words = _parse_festival_lab(lab.read_text(encoding="utf-8"), text)
        results.append(Synthesis(audio=audio, rate=rate, phones=phones, words=words))
    return results


def _nearest(bounds: np.ndarray, t: float) -> int:
    return int(np.argmin(np.abs(bounds - t)))


def _parse_festival_lab(lab: str, text: str) -> tuple[list[tuple[str, float]], list[tuple[str, int, int]]]:
    """Phones and per-token word spans from the lines our festival script writes."""
    phones: list[tuple[str, float]] = []
    tokens: list[tuple[str, list[tuple[float, float]]]] = []
    for line in lab.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "P":
            phones.append((f[1], float(f[2])))
        elif f[0] == "T":
            tokens.append((" ".join(f[1:]), []))
        elif f[0] == "W" and tokens:
            tokens[-1][1].append((float(f[1]), float(f[2])))
    ends = np.array([e for _, e in phones])
    starts = np.concatenate([[0.0], ends[:-1]])
    words: list[tuple[str, int, int]] = []
    for name, spans in tokens:
        norm = normalise_words(name)
        # A word festival gave no segments (e.g. the "'s" of "Lord's", merged into "Lord") has start == end.
        real = [(s, e) for s, e in spans if e > s]
        if not norm or not real:
            continue
        first = _nearest(starts, min(s for s, _ in real))
        last = _nearest(ends, max(e for _, e in real))
        words.append((" ".join(norm), first, last))
    return phones, words


# -------------------------------------------------------------------------------------------------- flite

_STRESS = re.compile(r"\d")


def _t2p_words(words: Sequence[str]) -> list[list[str]]:
    """Each word's radio pronunciation from flite's ``t2p``.

    All words go in one call as separate one-word sentences ("a. b. c."), which flite brackets with
    ``pau``; a word whose reading spans several groups (rare) is looked up alone instead.
    """
    out = subprocess.run(["t2p", ". ".join(words) + "."], capture_output=True, text=True, check=True).stdout
    groups: list[list[str]] = [[]]
    for p in out.split():
        p = _STRESS.sub("", p)
        if p == "pau":
            if groups[-1]:
                groups.append([])
        else:
            groups[-1].append(p)
    groups = [g for g in groups if g]
    if len(groups) == len(words):
        return groups
    return [_t2p_words([w])[0] if len(words) > 1 else groups[0] if groups else [] for w in words]


def _edit(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def align_words(spoken: Sequence[str], prons: Sequence[Sequence[str]]) -> list[tuple[int, int]]:
    """Split the spoken phone string into one non-empty run of phones per word.

    ``spoken``: the phones the engine produced (``pau`` included); ``prons``: each word's dictionary
    pronunciation. Returns ``(first, last)`` inclusive indices into ``spoken`` per word. The split minimises
    the total edit distance between each run and its word's pronunciation; runs never contain or cross a
    ``pau``. When the concatenated pronunciations equal the spoken phones (the usual case) the split is exact.
    """
    idx = [i for i, p in enumerate(spoken) if p != "pau"]
    seq = [spoken[i] for i in idx]
    n, m = len(prons), len(seq)
    if n == 0:
        return []
    if m < n:
        raise ValueError(f"{n} words but only {m} spoken phones")
    # Group id of each non-pause phone: a word may not straddle a pause.
    group = [sum(1 for p in spoken[: i + 1] if p == "pau") for i in idx]
    flat = [p for pron in prons for p in pron]
    if flat == seq:
        cuts, pos = [], 0
        for pron in prons:
            cuts.append((pos, pos + len(pron)))
            pos += len(pron)
        if all(group[a] == group[b - 1] for a, b in cuts if b > a) and all(b > a for a, b in cuts):
            return [(idx[a], idx[b - 1]) for a, b in cuts]
    inf = float("inf")
    for crossing_ok in (False, True):
        cost = [[inf] * (m + 1) for _ in range(n + 1)]
        back = [[0] * (m + 1) for _ in range(n + 1)]
        cost[0][0] = 0
        for w in range(1, n + 1):
            plen = len(prons[w - 1])
            lo_len, hi_len = 1, plen + 4  # a word is read in roughly its dictionary length
            for j in range(w, m + 1):
                best, arg = inf, -1
                for k in range(max(w - 1, j - hi_len), j - lo_len + 1):
                    if cost[w - 1][k] == inf or (not crossing_ok and group[k] != group[j - 1]):
                        continue
                    c = cost[w - 1][k] + _edit(seq[k:j], prons[w - 1])
                    if c < best:
                        best, arg = c, k
                cost[w][j], back[w][j] = best, arg
        if cost[n][m] < inf:
            spans = []
            j = m
            for w in range(n, 0, -1):
                k = back[w][j]
                spans.append((idx[k], idx[j - 1]))
                j = k
            return spans[::-1]
    raise ValueError("could not align words to the spoken phones")


def _flite(voice: Voice, text: str, wav: Path) -> Synthesis:
    proc = subprocess.run(
        ["flite", "-voice", voice.voice_id, "-psdur", "-t", text, "-o", str(wav)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not wav.is_file():
        raise LstmAsrError(f"flite ({voice.voice_id}) failed on {text!r}: {proc.stderr.strip()[-200:]}")
    phones: list[tuple[str, float]] = []
    for tok in proc.stdout.split():
        name, sep, end = tok.rpartition(":")
        if sep:
            phones.append((name, float(end)))
    audio, rate = sf.read(wav, dtype="float32", always_2d=False)
    words = normalise_words(text)
    prons = _t2p_words(words)
    spans = align_words([p for p, _ in phones], prons)
    return Synthesis(
        audio=audio,
        rate=rate,
        phones=phones,
        words=[(w, a, b) for w, (a, b) in zip(words, spans, strict=True)],
    )


# ------------------------------------------------------------------------------------------------ espeak-ng


def _espeak(voice: Voice, text: str) -> Synthesis:
    """One utterance from espeak-ng, synthesised in a fresh child process.

    The library carries state from one utterance to the next (the same text comes out a few samples different
    the second time), so each utterance gets a freshly initialised library: the same text and voice always give
    the same audio and labels, whatever was synthesised before (byte-identical corpora, resumable generation).

    A forked child is a copy of its parent, so two more things keep it fresh: the parent must never have
    synthesised itself (:func:`~data_prep.espeak_ng.has_spoken`; refused with an error), and the child resets
    libc's ``rand()``, which the breathy voice variants draw from (:func:`~data_prep.espeak_ng.reset_libc_rand`).
    Then the output depends on the voice and the text only, not on which process or worker asked for it."""
    import os
    import pickle

    from data_prep.espeak_ng import has_spoken

    if has_spoken():
        raise LstmAsrError("espeak-ng synthesised audio in this process (or its parent) earlier; a child forked "
                           "from it would inherit that state. Synthesise through data_prep.tts.synthesize only.")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: synthesise, send the result (or the error) back, and leave without cleanup handlers
        code = 0
        try:
            os.close(read_fd)
            try:
                from data_prep.espeak_ng import reset_libc_rand

                reset_libc_rand()
                result: object = _espeak_here(voice, text)
            except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it
                result, code = RuntimeError(str(exc)) if not isinstance(exc, LstmAsrError) else exc, 1
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(result, pipe)
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise LstmAsrError(f"espeak-ng ({voice.voice_id}) died on {text!r}")
    result = pickle.loads(data)  # our own child's output
    if isinstance(result, Exception):
        raise result
    return result


def _espeak_here(voice: Voice, text: str) -> Synthesis:
    """One utterance from espeak-ng's library in this process: phones and words timed by the engine's events.

    A word event starts a group of prompt words (usually one); a group of several (a function word timed with its
    neighbour) is split among its words by :func:`align_words`, with each word's pronunciation from the engine."""
    from data_prep.espeak_ng import engine, group_words, phone_segments

    eng = engine()
    audio, events = eng.speak(voice.voice_id, text)
    # espeak-ng starts speaking at the first sample (an utterance starting with a vowel has no lead-in at all):
    # 100 ms of silence in front gives every utterance the leading pause (h#) the other engines and TIMIT have.
    lead = eng.rate // 10
    audio = np.concatenate([np.zeros(lead, audio.dtype), audio])
    events = [(kind, s + lead, pos, length, name) for kind, s, pos, length, name in events]
    n = len(audio)
    segs = phone_segments(events, n)
    phones = [(p, e / eng.rate) for p, _, e in segs]
    groups = group_words(events, text)
    words: list[tuple[str, int, int]] = []
    for k, (ws, tokens) in enumerate(groups):
        we = groups[k + 1][0] if k + 1 < len(groups) else n + 1
        names = [w for tok in tokens for w in normalise_words(tok)]
        if not names:
            continue
        inside = [i for i, (p, s, _) in enumerate(segs) if p != "pau" and ws <= s < we]
        if len(inside) < len(names):
            raise LstmAsrError(f"espeak-ng ({voice.voice_id}) gave the words {names} of {text!r} too few phones")
        if len(names) == 1:
            words.append((names[0], inside[0], inside[-1]))
            continue
        spans = align_words([segs[i][0] for i in inside], [eng.pronounce(w) for w in names])
        words += [(w, inside[a], inside[b]) for w, (a, b) in zip(names, spans, strict=True)]
    return Synthesis(audio=(audio.astype(np.float32) / 32768.0), rate=eng.rate, phones=phones, words=words)
