"""Tests of the synthetic TIMIT-layout corpus generator (data_prep.synth_timit, tts, text_pool)."""

from __future__ import annotations

import json
import re
import shutil
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.phones import TIMIT_61
from data_prep.synth_timit import (
    MARKER,
    SA_TEXTS,
    corpus_is_complete,
    generate_timit_corpus,
    timit_labels,
)
from data_prep.text_pool import load_pool, normalise_words
from data_prep.tts import Synthesis, align_words, check_engines, voices_for_talkers
from lstm_asr.errors import CorpusError, LstmAsrError

RESOURCES = Path(__file__).resolve().parents[1] / "data_prep" / "resources"
CORE = [s.strip().upper() for s in (RESOURCES / "core_test_spk.list").read_text().split()]
DEV = [s.strip().upper() for s in (RESOURCES / "dev_spk.list").read_text().split()]
MISSING = [p for p in ("festival", "flite", "t2p", "sox") if shutil.which(p) is None]
needs_engines = pytest.mark.skipif(
    bool(MISSING), reason=f"synthesiser programs not installed: {', '.join(MISSING)}"
)

# A tiny corpus: 2 core-test + 1 dev speaker (ked), eight TRAIN speakers, which
# cover every TRAIN voice (festival and flite) of the four other talkers.
TINY = {"minutes": 1.0, "seed": 7, "n_core": 2, "n_dev": 1, "n_train": 8, "progress": False}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    generate_timit_corpus(out, jobs=2, **TINY)
    return out


def _speakers(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/DR*/*") if p.is_dir() and not p.name.startswith("."))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _read_labels(path: Path) -> list[tuple[int, int, str]]:
    out = []
    for line in path.read_text(encoding="ascii").splitlines():
        b, e, lab = line.split()
        out.append((int(b), int(e), lab))
    return out


def _sphere_header(path: Path) -> dict[str, str]:
    head = path.read_bytes()[:1024].decode("ascii")
    assert head.startswith("NIST_1A\n   1024\n"), path
    fields = {}
    for line in head.split("end_head")[0].splitlines()[2:]:
        key, _typ, value = line.split(maxsplit=2)
        fields[key] = value
    return fields


# ------------------------------------------------------------------------------- pure functions (no engines)


def test_text_pool_is_big_clean_and_distinct() -> None:
    pool = load_pool()
    keys = {" ".join(normalise_words(s)) for s in pool}
    assert len(keys) >= 5000 and len(keys) == len(pool)
    for s in pool:
        assert 5 <= len(s.split()) <= 14, s
        assert re.fullmatch(r"[A-Za-z' ,;:.?!]+", s), s
    assert all(s in pool for s in SA_TEXTS)


def test_labels_map_radio_phones_to_timit() -> None:
    # 0.1 s pau, "b" 0.1 s, "ah" 0.1 s, inner pau, "t" 0.1 s, final pau overrunning the audio
    syn = Synthesis(
        audio=np.zeros(1, np.float32),
        rate=16000,
        phones=[("pau", 0.1), ("b", 0.2), ("ah", 0.3), ("pau", 0.4), ("t", 0.5), ("pau", 0.9)],
        words=[("but", 1, 2), ("it", 4, 4)],
    )
    phn, wrd = timit_labels(syn, factor=1.0, n=12000)
    assert phn == [
        (0, 1600, "h#"),
        (1600, 2480, "bcl"),
        (2480, 3200, "b"),
        (3200, 4800, "ah"),
        (4800, 6400, "pau"),
        (6400, 7280, "tcl"),
        (7280, 8000, "t"),
        (8000, 12000, "h#"),  # clipped to the audio length
    ]
    assert wrd == [(1600, 4800, "but"), (6400, 8000, "it")]
    # a tempo factor scales every boundary
    phn2, _ = timit_labels(syn, factor=0.5, n=7000)
    assert phn2[1] == (800, 1240, "bcl") and phn2[-1][1] == 7000


def test_align_words_handles_reductions_and_pauses() -> None:
    spoken = "pau dh iy er th pau s eh d pau".split()
    prons = [["dh", "ax"], ["er", "th"], ["s", "eh", "d"]]
    assert align_words(spoken, prons) == [(1, 2), (3, 4), (6, 8)]


def test_missing_synthesiser_names_the_apt_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LstmAsrError, match=r"apt-get install .*festival.*flite"):
        check_engines(voices_for_talkers(["kal"]))


# -------------------------------------------------------------------------------------- generated corpus


@needs_engines
def test_layout_and_marker(tiny: Path) -> None:
    assert corpus_is_complete(tiny)
    info = json.loads((tiny / MARKER).read_text())
    speakers = _speakers(tiny)
    assert len(speakers) == 3 + 8 == len(info["speakers"])
    for spk in speakers:
        assert re.fullmatch(r"(TRAIN|TEST)/DR[1-8]/[FM][A-Z]{3}\d", str(spk.relative_to(tiny)))
        names = sorted({p.stem for p in spk.iterdir()})
        assert names[:2] == ["SA1", "SA2"]
        assert sum(n.startswith("SX") for n in names) == 5 and sum(n.startswith("SI") for n in names) == 3
        assert all(re.fullmatch(r"S[XI]\d+", n) for n in names[2:])
        assert all(int(n[2:]) < 453 if n.startswith("SX") else int(n[2:]) >= 453 for n in names[2:])
        for stem in names:
            assert {p.suffix for p in spk.glob(f"{stem}.*")} == {".WAV", ".PHN", ".WRD", ".TXT"}
    test = {p.name for p in (tiny / "TEST").glob("DR*/*")}
    assert test == set(CORE[:2]) | set(DEV[:1])
    train = {p.name for p in (tiny / "TRAIN").glob("DR*/*")}
    assert not train & (set(CORE) | set(DEV))
    # core-test speakers sit in their TIMIT regions (three per region, in list order)
    assert (tiny / "TEST" / "DR1" / CORE[0]).is_dir()


@needs_engines
def test_audio_and_labels_are_consistent(tiny: Path) -> None:
    symbols = set(TIMIT_61)
    wavs = sorted(tiny.glob("*/DR*/*/*.WAV"))
    assert len(wavs) == 110
    for wav in wavs:
        hdr = _sphere_header(wav)
        assert hdr["sample_rate"] == "16000" and hdr["sample_n_bytes"] == "2" and hdr["channel_count"] == "1"
        n = int(hdr["sample_count"])
        assert wav.stat().st_size == 1024 + 2 * n
        begin, end, text = wav.with_suffix(".TXT").read_text().split(maxsplit=2)
        assert (int(begin), int(end)) == (0, n)
        phn = _read_labels(wav.with_suffix(".PHN"))
        assert phn[0][0] == 0 and phn[-1][1] == n, wav
        assert phn[0][2] == "h#" and phn[-1][2] == "h#"
        assert all(a[1] == b[0] for a, b in pairwise(phn)), wav
        assert all(b < e and lab in symbols for b, e, lab in phn), wav
        wrd = _read_labels(wav.with_suffix(".WRD"))
        assert [w for _, _, w in wrd] == normalise_words(text), wav
        bounds = {b for b, _, _ in phn} | {n}
        assert all(b < e and b in bounds and e in bounds for b, e, _ in wrd), wav
        assert all(a[1] <= b[0] for a, b in pairwise(wrd)), wav
        # the labels sit on the speech: the edge silences are much quieter than the phones
        x = sf.read(wav)[0]
        sil = np.concatenate([x[b:e] for b, e, lab in phn if lab == "h#"])
        speech = np.concatenate([x[b:e] for b, e, lab in phn if lab not in ("h#", "pau")])
        assert (speech**2).mean() > 10 * (sil**2).mean(), wav


@needs_engines
def test_test_and_train_are_disjoint(tiny: Path) -> None:
    info = json.loads((tiny / MARKER).read_text())
    talkers = {
        split: {v["talker"] for k, v in info["speakers"].items() if k.startswith(split)}
        for split in ("TRAIN", "TEST")
    }
    assert talkers["TEST"] == {"ked"}
    assert talkers["TRAIN"] == {"kal", "slt", "rms", "awb"}
    voices = {v["voice"] for k, v in info["speakers"].items() if k.startswith("TRAIN")}
    assert voices == {"festival_kal", "flite_kal16", "festival_slt", "flite_slt", "flite_rms", "flite_awb"}

    def prompts(split: str) -> set[str]:
        return {p.read_text().split(maxsplit=2)[2].strip() for p in (tiny / split).glob("DR*/*/S[XI]*.TXT")}

    assert prompts("TEST") and prompts("TRAIN") and not prompts("TEST") & prompts("TRAIN")


@needs_engines
def test_same_seed_same_bytes(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_timit_corpus(again, jobs=1, **TINY)
    assert _files(again) == _files(tiny)
    other = tmp_path / "other"
    generate_timit_corpus(other, jobs=2, **{**TINY, "seed": 8})
    assert _files(other) != _files(tiny)


@needs_engines
def test_resume_keeps_finished_speakers(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(tiny, out)
    # Simulate an interruption: no marker, one speaker missing, another half written under its temp name.
    (out / MARKER).unlink()
    lost = _speakers(out)[-1]
    shutil.rmtree(lost)
    (lost.parent / f".{lost.name}.partial").mkdir()
    (lost.parent / f".{lost.name}.partial" / "SA1.WAV").write_bytes(b"junk")
    assert not corpus_is_complete(out)
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.WAV") if not p.parent.name.startswith(".")}

    summary = generate_timit_corpus(out, jobs=2, **TINY)

    assert corpus_is_complete(out)
    assert summary.resumed_speakers == len(_speakers(tiny)) - 1
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # finished speakers were not rewritten
    assert _files(out) == _files(tiny)  # and the redone speaker is byte-identical, the temp folder gone
    assert "TRAIN" in str(summary) and summary.train_utterances + summary.test_utterances == 110

    with pytest.raises(CorpusError, match="other settings"):
        generate_timit_corpus(out, jobs=1, **{**TINY, "seed": 1})


@needs_engines
def test_unlabelable_prompt_is_skipped_and_counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A prompt a voice speaks with a phone that has no TIMIT mapping is left out of that voice's speakers and
    counted (SYNTH_INFO.json, the summary, stderr), and the rest of the corpus is written as usual."""
    import data_prep.synth_timit as st
    from data_prep.espeak_ng import UnmappedPhoneme

    real = st.synthesize
    bad: dict[str, str] = {}

    def synthesize(voice, texts, workdir):  # the first non-SA prompt of the first voice asked fails
        if not bad:
            bad.update(voice=voice.name, text=next(t for t in texts if t not in SA_TEXTS))
        if voice.name == bad["voice"] and bad["text"] in texts:
            raise UnmappedPhoneme("espeak-ng phoneme 'Q!' has no mapping to TIMIT phones")
        return real(voice, texts, workdir)

    monkeypatch.setattr(st, "synthesize", synthesize)
    out = tmp_path / "corpus"
    summary = generate_timit_corpus(out, jobs=1, **TINY)

    info = json.loads((out / MARKER).read_text())
    skipped = info["skipped_utterances"]
    # Exactly the utterances of that voice's speakers whose prompt is the bad one are missing, nothing else.
    assert skipped and summary.skipped_utterances == len(skipped)
    for name in skipped:
        folder, utt = name.rsplit("/", 1)
        assert info["speakers"][folder]["voice"] == bad["voice"]
        assert not (out / folder / f"{utt}.WAV").exists() and not (out / folder / f"{utt}.PHN").exists()
    written = sum(1 for _ in out.glob("*/DR*/*/*.WAV"))
    assert written == summary.train_utterances + summary.test_utterances == 110 - len(skipped)
    err = capsys.readouterr().err
    assert f"for voice {bad['voice']}" in err and "'Q!'" in err and len(err.strip().splitlines()) == 1
    assert "skipped" in str(summary)
    # Finishing a finished corpus counts the same skips from the disk.
    assert generate_timit_corpus(out, jobs=1, **TINY).skipped_utterances == len(skipped)
