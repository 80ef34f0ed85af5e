"""espeak-ng talkers in the generated corpus (labels from the library's phoneme events) and the TIMIT-size plan."""

from __future__ import annotations

import ctypes
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.phones import TIMIT_61
from data_prep.synth_timit import MARKER, TIMIT_SIZE, generate_timit_corpus, plan_corpus
from data_prep.text_pool import normalise_words
from data_prep.tts import ENGINES, VOICES
from lstm_asr.errors import LstmAsrError


def _espeak_missing() -> str:
    from data_prep.espeak_ng import load_library

    try:
        load_library()
    except LstmAsrError as exc:
        return str(exc)
    missing = [p for p in ("festival", "flite", "t2p", "sox") if shutil.which(p) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


needs_espeak = pytest.mark.skipif(bool(_espeak_missing()), reason=_espeak_missing() or "ok")
SMALL = {"minutes": 1.0, "seed": 3, "n_core": 2, "n_dev": 1, "n_train": 6, "progress": False,
         "engines": ENGINES, "test_talkers": ("ked", "espm7")}


def test_phone_segments_follow_the_events_and_cover_the_audio() -> None:
    from data_prep.espeak_ng import UnmappedPhoneme, phone_segments

    word, phone = 1, 7
    events = [(word, 0, 1, 3, ""), (phone, 100, 1, 0, "D"), (phone, 300, 1, 0, "@2"), (phone, 500, 1, 0, ";"),
              (phone, 700, 5, 0, "l"), (phone, 700, 5, 0, "e@"), (phone, 1700, 5, 0, "t#"),
              (phone, 1900, 9, 0, "_:"), (phone, 2100, 9, 0, "_")]
    segs = phone_segments(events, 2300)
    assert segs == [("pau", 0, 100), ("dh", 100, 300), ("ax", 300, 700),  # ';' is a mark, not a phone
                    ("eh", 700, 1300), ("r", 1300, 1700),  # 'l' has no duration; e@ = eh + r, 60/40
                    ("dx", 1700, 1900), ("pau", 1900, 2300)]  # the two pauses are one, to the end of the audio
    with pytest.raises(UnmappedPhoneme, match="no mapping"):
        phone_segments([(phone, 0, 1, 0, "Q!")], 10)


def test_timit_size_plan_has_timits_shape() -> None:
    plans = plan_corpus(60.0, 0, engines=ENGINES, test_talkers=("ked", "espm7", "espf5"), **TIMIT_SIZE)
    train = [p for p in plans if p.split == "TRAIN"]
    test = [p for p in plans if p.split == "TEST"]
    assert len(train) == 462 and len(test) == 168 and len({p.name for p in plans}) == 630
    assert sum(len([u for u, _ in p.utts if not u.startswith("SA")]) for p in train) == 3696
    assert all(len(p.utts) == 10 for p in plans)
    held = {VOICES[p.voice].talker for p in test}
    assert held == {"ked", "espm7", "espf5"} and not held & {VOICES[p.voice].talker for p in train}
    assert {VOICES[p.voice].engine for p in train} == set(ENGINES)


@contextmanager
def _libc_rand_drawn() -> Iterator[None]:
    """This process's libc ``rand()`` moved on, as any library linking it may do (PIL, onnxruntime, cuDNN)."""
    libc = ctypes.CDLL(None)
    for _ in range(5):
        libc.rand()
    try:
        yield
    finally:
        libc.srand(1)  # glibc's start-up state, for the tests that follow


@needs_espeak
def test_espeak_utterance_depends_on_its_voice_and_text_only(tmp_path: Path) -> None:
    """The same voice and text give the same audio and labels whatever was synthesised before, in what batch,
    and whatever state the calling process is in: the engine keeps state between utterances (the same text
    comes out different after another one) and its breathy variants draw noise from libc's rand()."""
    from data_prep.tts import synthesize

    text = "She had your dark suit in greasy wash water all year."
    others = ["Don't ask me to carry an oily rag like that.", "The quick brown fox jumps over the lazy dog."]
    for name in ("espeak_f5", "espeak_m7"):  # f5 is breathy (rand noise), m7 is not
        voice = VOICES[name]
        alone = synthesize(voice, [text], tmp_path)[0]
        after_one = synthesize(voice, [others[0], text], tmp_path)[1]
        after_two = synthesize(voice, [others[1], others[0], text], tmp_path)[2]
        with _libc_rand_drawn():
            drawn = synthesize(voice, [text], tmp_path)[0]
        for syn in (after_one, after_two, drawn):
            assert syn.audio.tobytes() == alone.audio.tobytes(), name
            assert (syn.phones, syn.words) == (alone.phones, alone.words), name


def test_espeak_refuses_to_fork_from_a_process_that_synthesised(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    """A child forked from a process whose library has spoken would inherit that history: refused, not silent."""
    from data_prep import espeak_ng
    from data_prep.tts import synthesize

    monkeypatch.setattr(espeak_ng, "_SPOKE", True)
    with pytest.raises(LstmAsrError, match="earlier"):
        synthesize(VOICES["espeak_m7"], ["Hello there."], tmp_path)


@needs_espeak
def test_espeak_talkers_have_honest_labels_and_are_deterministic(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    generate_timit_corpus(out, jobs=2, **SMALL)
    info = json.loads((out / MARKER).read_text())
    engines = {k: v["engine"] for k, v in info["speakers"].items()}
    assert "espeak" in {e for k, e in engines.items() if k.startswith("TEST")}
    assert {v["talker"] for k, v in info["speakers"].items() if k.startswith("TEST")} == {"ked", "espm7"}
    sets = {v["set"] for k, v in info["speakers"].items() if k.startswith("TEST")}
    assert sets == {"core", "dev"}
    espeak_wavs = [w for w in sorted(out.glob("*/DR*/*/*.WAV"))
                   if engines[str(w.parent.relative_to(out))] == "espeak"]
    assert len(espeak_wavs) >= 10
    for wav in espeak_wavs:
        x = sf.read(wav)[0]
        n = len(x)
        phn = [(int(b), int(e), p) for b, e, p in (line.split() for line in wav.with_suffix(".PHN").read_text()
                                                   .splitlines())]
        assert phn[0][0] == 0 and phn[-1][1] == n and phn[0][2] == "h#" and phn[-1][2] == "h#", wav
        assert all(a[1] == b[0] for a, b in pairwise(phn)) and all(b < e and p in TIMIT_61 for b, e, p in phn)
        text = wav.with_suffix(".TXT").read_text().split(maxsplit=2)[2]
        wrd = [line.split() for line in wav.with_suffix(".WRD").read_text().splitlines()]
        assert [w for _, _, w in wrd] == normalise_words(text), wav
        bounds = {b for b, _, _ in phn} | {n}
        assert all(int(b) in bounds and int(e) in bounds for b, e, _ in wrd), wav
        # The engine's timings put the silences where the audio is quiet.
        sil = np.concatenate([x[b:e] for b, e, p in phn if p == "h#"])
        speech = np.concatenate([x[b:e] for b, e, p in phn if p not in ("h#", "pau", "q")])
        assert (speech**2).mean() > 10 * (sil**2).mean(), wav
    # Another process layout: one job per speaker (each job synthesises a subset of its voice's prompts, in
    # another order), no worker pool, and a parent whose libc rand() some library has drawn from.
    again = tmp_path / "again"
    with _libc_rand_drawn():
        generate_timit_corpus(again, jobs=1, speakers_per_job=1, **SMALL)
    assert all((again / w.relative_to(out)).read_bytes() == w.read_bytes() for w in espeak_wavs)
    assert all((again / w.relative_to(out)).with_suffix(".PHN").read_bytes() == w.with_suffix(".PHN").read_bytes()
               for w in espeak_wavs)
