"""Tests of the TIMIT tree reader, transcription parsers, phone folding and the fake-corpus generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fake_timit import FAKE_PHONE_FREQS, FAKE_PHONES, make_fake_timit

from data_prep.audio import read_audio
from data_prep.phones import PHONES_39, TIMIT_61, TRAIN_PHONES, fold_39, fold_48
from data_prep.timit import (
    CORE_TEST_SPEAKERS,
    DEV_SPEAKERS,
    TimitCorpus,
    phone_labels,
    read_phn,
    read_txt,
    read_wrd,
)
from lstm_asr.errors import CorpusError

# ---------------------------------------------------------------------------------------------- phone sets


def test_inventories() -> None:
    assert len(TIMIT_61) == 61 == len(set(TIMIT_61))
    assert TIMIT_61[:3] == ("aa", "ae", "ah")  # the map's order
    assert len(TRAIN_PHONES) == 60 and "q" not in TRAIN_PHONES
    assert len(PHONES_39) == 39 and list(PHONES_39) == sorted(set(PHONES_39))


def test_fold_39_covers_all_61() -> None:
    folded = fold_39(TIMIT_61)
    assert len(folded) == 60  # q deleted, everything else maps
    assert set(folded) == set(PHONES_39)
    assert fold_39(["q"]) == [] and fold_48(["q"]) == []
    assert len(set(fold_48(TIMIT_61))) == 48


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        ("ix", "ih"), ("ax-h", "ah"), ("ax", "ah"), ("zh", "sh"), ("ao", "aa"), ("el", "l"), ("en", "n"),
        ("nx", "n"), ("ux", "uw"), ("axr", "er"), ("hv", "hh"), ("em", "m"), ("eng", "ng"),
        ("h#", "sil"), ("pau", "sil"), ("epi", "sil"), ("bcl", "sil"), ("dcl", "sil"), ("gcl", "sil"),
        ("pcl", "sil"), ("tcl", "sil"), ("kcl", "sil"), ("iy", "iy"), ("dx", "dx"),
    ],
)  # fmt: skip
def test_fold_39_examples(src: str, dst: str) -> None:
    assert fold_39([src]) == [dst]


def test_fold_48_keeps_closure_classes_and_is_idempotent() -> None:
    assert fold_48(["bcl", "pcl", "h#", "ix", "hv"]) == ["vcl", "cl", "sil", "ix", "hh"]
    # Already-folded symbols fold again to themselves / their 39 class.
    assert fold_39(fold_48(TIMIT_61)) == fold_39(TIMIT_61)
    assert fold_39(PHONES_39) == list(PHONES_39)


def test_fold_unknown_symbol() -> None:
    with pytest.raises(ValueError, match="xyz"):
        fold_39(["aa", "xyz"])
    with pytest.raises(ValueError, match="xyz"):
        fold_48(["xyz"])


# ------------------------------------------------------------------------------------------- transcriptions


def test_read_phn_wrd_txt(tmp_path: Path) -> None:
    phn = tmp_path / "SI1.PHN"
    phn.write_text("0 7470 h#\n7470 9840 sh\n9840 11362 q\n11362 12000 iy\n\n")
    assert read_phn(phn) == [(0, 7470, "h#"), (7470, 9840, "sh"), (9840, 11362, "q"), (11362, 12000, "iy")]
    wrd = tmp_path / "SI1.WRD"
    wrd.write_text("7470 11362 she\n11000 12000 overlapping\n")  # TIMIT words may share a phone
    assert read_wrd(wrd)[1] == (11000, 12000, "overlapping")
    txt = tmp_path / "SI1.TXT"
    txt.write_text("0 46797 She had your dark suit in greasy wash water all year.\r\n")
    assert read_txt(txt) == "She had your dark suit in greasy wash water all year."


@pytest.mark.parametrize(
    ("content", "line", "needle"),
    [
        ("0 100 h#\n100 200 zz\n", 2, "'zz'"),
        ("0 100 h#\n100 200 aa\n50 300 iy\n", 3, "begin 50"),  # begins go backwards
        ("0 100 h#\n90 200 aa\n", 2, "overlaps"),
        ("0 100 h#\n\n100 1O0 aa\n", 3, "integers"),  # non-numeric (letter O), after a blank line
        ("0 100 h#\n100 100 aa\n", 2, "begin < end"),
        ("0 100 h#\n100 200\n", 2, "fields"),
        ("0 100 h# extra\n", 1, "fields"),
        ("-5 100 h#\n", 1, "begin < end"),
    ],
)
def test_read_phn_errors_name_file_and_line(tmp_path: Path, content: str, line: int, needle: str) -> None:
    path = tmp_path / "SX3.PHN"
    path.write_text(content)
    with pytest.raises(CorpusError) as info:
        read_phn(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: line {line}:") and needle in msg


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xff\xfe\x00garbage", b"0 1 h#\n" * 200_000])
def test_read_phn_empty_binary_or_huge(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "X.PHN"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match="X.PHN"):
        read_phn(path)


def test_readers_missing_files(tmp_path: Path) -> None:
    for reader in (read_phn, read_wrd, read_txt):
        with pytest.raises(CorpusError, match="nope"):
            reader(tmp_path / "nope")
    (tmp_path / "t.txt").write_text("zero one text\n")
    with pytest.raises(CorpusError, match="integers"):
        read_txt(tmp_path / "t.txt")


# ------------------------------------------------------------------------------------------------- corpus


@pytest.mark.parametrize("upper", [True, False])
def test_splits_on_fake_tree(tmp_path: Path, upper: bool) -> None:
    root = make_fake_timit(tmp_path / "timit", n_train=5, n_dev=3, n_core=2, utts_per_speaker=4, upper=upper)
    assert (root / ("TRAIN" if upper else "train")).is_dir()
    corpus = TimitCorpus(root)
    train, dev, test, complete = (corpus.split(s) for s in ("train", "dev", "test", "complete_test"))
    assert (len(train.utterances), len(dev.utterances), len(test.utterances)) == (20, 12, 8)
    assert len(complete.utterances) == 20  # every TEST speaker, dev included
    for listing in (train, dev, test, complete):
        assert not listing.skipped
        ids = [u.utt_id for u in listing.utterances]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        assert not any(u.sentence.startswith("sa") for u in listing.utterances)
        for u in listing.utterances:
            assert u.utt_id == f"{u.speaker}_{u.sentence}" and u.utt_id == u.utt_id.lower()
            assert u.wav.is_file() and u.phn.is_file() and u.wrd is not None and u.txt is not None
            assert u.dialect.startswith("dr") and u.sentence[:2] in ("si", "sx")
    assert {u.speaker for u in dev.utterances} == set(DEV_SPEAKERS[:3])
    assert {u.speaker for u in test.utterances} == set(CORE_TEST_SPEAKERS[:2])
    assert {u.usage for u in train.utterances} == {"train"}
    assert {u.usage for u in dev.utterances + test.utterances} == {"test"}
    assert not {u.speaker for u in train.utterances} & (set(DEV_SPEAKERS) | set(CORE_TEST_SPEAKERS))
    # Listed speakers the tree lacks are reported, not fatal.
    assert dev.missing_speakers == sorted(DEV_SPEAKERS[3:])
    assert test.missing_speakers == sorted(CORE_TEST_SPEAKERS[2:])
    assert train.missing_speakers == []


def test_same_listing_for_upper_and_lower_case(tmp_path: Path) -> None:
    a = TimitCorpus(make_fake_timit(tmp_path / "a", upper=True)).split("train").utterances
    b = TimitCorpus(make_fake_timit(tmp_path / "b", upper=False)).split("train").utterances
    assert [u.utt_id for u in a] == [u.utt_id for u in b]
    assert a[0].wav.name.isupper() and b[0].wav.name.islower()
    assert read_phn(a[0].phn) == read_phn(b[0].phn)  # same seed, same content


def test_mixed_case_extensions_and_missing_files(tmp_path: Path) -> None:
    root = make_fake_timit(tmp_path / "t", n_train=2, n_dev=0, n_core=0, utts_per_speaker=3)
    utts = TimitCorpus(root).split("train").utterances
    # .WAV with .phn (as on some copies), a .WAV with no .PHN, and a .PHN with no .WAV.
    mixed, no_phn, no_wav = utts[0], utts[1], utts[2]
    mixed.phn.rename(mixed.phn.with_suffix(".phn"))
    no_phn.phn.unlink()
    no_wav.wav.unlink()
    (mixed.wav.parent / "README.DOC").write_text("not a sentence")
    listing = TimitCorpus(root).split("train")
    assert len(listing.utterances) == len(utts) - 2
    got = {u.utt_id: u for u in listing.utterances}
    assert got[mixed.utt_id].phn.name.endswith(".phn") and got[mixed.utt_id].wav.name.endswith(".WAV")
    reasons = {p.name: r for p, r in listing.skipped}
    assert reasons == {no_phn.wav.name: "no .PHN transcription", no_wav.phn.name: "no .WAV audio"}


def test_riff_tree_reads(tmp_path: Path) -> None:
    root = make_fake_timit(tmp_path / "t", n_train=1, n_dev=1, n_core=1, utts_per_speaker=2, riff=True)
    utt = TimitCorpus(root).split("dev").utterances[0]
    assert utt.wav.read_bytes()[:4] == b"RIFF" and utt.wav.suffix == ".WAV"
    audio, rate = read_audio(utt.wav)
    assert rate == 16000 and len(audio) == read_phn(utt.phn)[-1][1]


def test_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        TimitCorpus(tmp_path / "absent")
    (tmp_path / "outer" / "TIMIT" / "TRAIN").mkdir(parents=True)
    with pytest.raises(CorpusError, match="did you mean .*TIMIT"):
        TimitCorpus(tmp_path / "outer")
    with pytest.raises(ValueError, match="unknown TIMIT split"):
        TimitCorpus(tmp_path / "outer" / "TIMIT").split("valid")


def test_test_only_tree(tmp_path: Path) -> None:
    root = make_fake_timit(tmp_path / "t", n_train=0, n_dev=1, n_core=1, utts_per_speaker=2)
    corpus = TimitCorpus(root)
    assert corpus.split("train").utterances == []
    assert len(corpus.split("test").utterances) == 2


def test_phone_labels_drops_q(tmp_path: Path) -> None:
    root = make_fake_timit(tmp_path / "t", n_train=1, n_dev=0, n_core=0, utts_per_speaker=1)
    utt = TimitCorpus(root).split("train").utterances[0]
    segs = read_phn(utt.phn)
    b, e, _ = segs[1]
    segs[1:2] = [(b, (b + e) // 2, "q"), ((b + e) // 2, e, segs[1][2])]
    utt.phn.write_text("".join(f"{b} {e} {p}\n" for b, e, p in segs))
    labels = phone_labels(utt)
    assert "q" not in labels and labels == [p for _, _, p in segs if p != "q"]


def test_listing_opens_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing must only walk directories (a real TIMIT has 25200 files); files are read later, on demand."""
    import builtins
    import io

    root = make_fake_timit(tmp_path / "t", n_train=3, n_dev=1, n_core=1, utts_per_speaker=2)

    def refuse(*args, **kwargs):
        raise AssertionError(f"file opened while listing: {args[:1]}")

    for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
        monkeypatch.setattr(module, name, refuse)
    corpus = TimitCorpus(root)
    counts = [len(corpus.split(s).utterances) for s in ("train", "dev", "test", "complete_test")]
    monkeypatch.undo()
    assert counts == [6, 2, 2, 4]


def test_listing_many_speakers(tmp_path: Path) -> None:
    # A TIMIT-shaped tree of empty placeholders: listing reads names only, never a file's bytes (the files are
    # empty, so reading one would fail its format check). Speed is a benchmark's business, not a test's.
    n_speakers, n_sentences = 100, 5
    for k in range(n_speakers):
        usage = "TRAIN" if k < 70 else "TEST"
        folder = tmp_path / usage / f"DR{k % 8 + 1}" / f"M{k:03d}0"
        folder.mkdir(parents=True)
        for s in ["SA1", *(f"SX{k * 10 + j}" for j in range(n_sentences - 1))]:
            for ext in ("WAV", "PHN"):
                os.close(os.open(folder / f"{s}.{ext}", os.O_CREAT | os.O_WRONLY))
    corpus = TimitCorpus(tmp_path)
    assert len(corpus.split("train").utterances) == 70 * (n_sentences - 1)
    assert len(corpus.split("complete_test").utterances) == 30 * (n_sentences - 1)


# ------------------------------------------------------------------------------------------- fake corpus


def test_fake_timit_is_consistent_and_fast(tmp_path: Path) -> None:
    root = make_fake_timit(tmp_path / "t")
    corpus = TimitCorpus(root)
    assert [len(corpus.split(s).utterances) for s in ("train", "dev", "test")] == [24, 8, 8]
    sa = sorted(p.name for p in root.rglob("SA*.WAV"))
    assert len(sa) == 2 * 10
    for utt in corpus.split("train").utterances + corpus.split("test").utterances:
        segs = read_phn(utt.phn)
        assert 4 <= len(segs) <= 10 and segs[0][2] == segs[-1][2] == "h#"
        assert set(p for _, _, p in segs) <= set(FAKE_PHONES) <= set(TRAIN_PHONES)
        assert all(960 <= e - b <= 2400 for b, e, _ in segs)
        assert all(segs[i][1] == segs[i + 1][0] for i in range(len(segs) - 1))
        audio, rate = read_audio(utt.wav)
        assert rate == 16000 and len(audio) == segs[-1][1] and np.abs(audio).max() <= 1.0
        words = read_wrd(utt.wrd)
        assert words[0][0] == segs[1][0] and words[-1][1] == segs[-2][1]
        assert read_txt(utt.txt).endswith(".")


def test_fake_timit_audio_identifies_the_phone(tmp_path: Path) -> None:
    """Each non-silence segment's spectrum peaks near one of its phone's two tones: the task is learnable."""
    root = make_fake_timit(tmp_path / "t", n_train=2, n_dev=0, n_core=0, include_sa=False)
    for utt in TimitCorpus(root).split("train").utterances:
        audio, _ = read_audio(utt.wav)
        for b, e, p in read_phn(utt.phn):
            seg = audio[b:e]
            if p == "h#":
                assert np.sqrt(np.mean(seg**2)) < 0.01
                continue
            peak = np.argmax(np.abs(np.fft.rfft(seg))) * 16000 / len(seg)
            f1, f2 = FAKE_PHONE_FREQS[p]
            assert min(abs(peak / f1 - 1), abs(peak / f2 - 1)) < 0.08, (p, peak)


def test_fake_timit_deterministic_and_seeded(tmp_path: Path) -> None:
    a = make_fake_timit(tmp_path / "a", n_train=1, n_dev=0, n_core=0, seed=3)
    b = make_fake_timit(tmp_path / "b", n_train=1, n_dev=0, n_core=0, seed=3)
    c = make_fake_timit(tmp_path / "c", n_train=1, n_dev=0, n_core=0, seed=4)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files if f.suffix == ".PHN")
