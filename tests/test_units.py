"""Output units (characters, phones given or through a lexicon, BPE), scoring as words, sclite summary."""

from __future__ import annotations

import pytest

from data_prep.corpora import score_units_for
from data_prep.units import BPE_SPACE, WORD_SEP, CharUnits, PhoneUnits, UnitError, make_units, tokens_to_words
from lstm_asr.errors import CorpusError, LstmAsrError
from lstm_asr.scoring.error_report import character_counts, sclite_summary
from lstm_asr.scoring.levenshtein import align

TEXTS = ["THE CAT SAT", "A  CAT", "THE MAT SAT ON A CAT"]


def test_chars_round_trip_and_inventory():
    u = CharUnits()
    u.fit(TEXTS)
    assert u.inventory[0] == WORD_SEP and sorted(u.inventory[1:]) == sorted(set("".join(TEXTS).replace(" ", "")))
    labels = u.labels("A  CAT SAT ")
    assert labels == ("A", WORD_SEP, "C", "A", "T", WORD_SEP, "S", "A", "T")
    assert tokens_to_words(labels, "chars") == ["A", "CAT", "SAT"]
    with pytest.raises(UnitError, match="character 'X'"):
        u.labels("TAX")
    with pytest.raises(LstmAsrError, match="word boundary"):
        CharUnits().fit(["A|B"])


def test_phones_given_in_the_transcripts():
    u = make_units("phones")
    u.fit(["sil dh ah sil", "k ae t"])
    assert u.inventory == sorted({"sil", "dh", "ah", "k", "ae", "t"})
    assert u.labels("k ah t") == ("k", "ah", "t")
    with pytest.raises(UnitError, match="phone 'zz'"):
        u.labels("k zz")


def test_phones_through_a_cmudict_lexicon(tmp_path):
    lex = tmp_path / "cmudict.dict"
    lex.write_text(";;; comment\nTHE  DH AH0\nTHE(2)  DH IY0\nCAT  K AE1 T\nSAT 1.0 S AE1 T\n\n")
    u = PhoneUnits(lex)
    u.fit(TEXTS)
    assert u.inventory == sorted({"DH", "AH0", "K", "AE1", "T", "S"})  # alternatives (THE(2)) are not used
    assert u.labels("THE CAT SAT") == ("DH", "AH0", "K", "AE1", "T", "S", "AE1", "T")  # first pronunciation
    with pytest.raises(UnitError, match="out-of-lexicon word 'MAT'"):
        u.labels("THE MAT")


@pytest.mark.parametrize("content, problem", [
    ("THE DH AH0\nCAT\n", "line 2: expected 'WORD PHONE ...'"),
    ("", "lexicon has no entries"),
    ("THE DH | AH0\n", "line 1: '|'"),
])
def test_lexicon_in_the_wrong_format_is_a_one_line_error(tmp_path, content, problem):
    lex = tmp_path / "lexicon.txt"
    lex.write_text(content)
    with pytest.raises(CorpusError, match=problem) as exc:
        PhoneUnits(lex)
    assert str(lex) in str(exc.value) and "\n" not in str(exc.value)


def test_bpe_is_trained_on_the_text_and_maps_back_to_words():
    pytest.importorskip("sentencepiece")
    texts = [f"{w} {v} CAT" for w in ("THE", "A", "SAT") for v in ("MAT", "HAT", "CAT")] * 3
    u, v = make_units("bpe", bpe_vocab_size=30), make_units("bpe", bpe_vocab_size=30)
    u.fit(texts)
    v.fit(texts)
    assert u.inventory == v.inventory  # deterministic: prep's fingerprint must not change between runs
    assert any(p.startswith(BPE_SPACE) for p in u.inventory) and "<unk>" not in u.inventory
    labels = u.labels("THE HAT  SAT")
    assert set(labels) <= set(u.inventory) and len(labels) < len("THEHATSAT")
    assert tokens_to_words(labels, "bpe") == ["THE", "HAT", "SAT"]
    with pytest.raises(UnitError, match="character 'Q'"):
        u.labels("QAT")


def test_scoring_units_for_text_corpora():
    chars = list("AB") + [WORD_SEP] + list("CD")
    assert score_units_for("librispeech", "chars")(chars) == ["AB", "CD"]
    assert score_units_for("kaldi_dir", "")(chars) == ["AB", "CD"]  # characters by default
    assert score_units_for("manifest", "bpe")([f"{BPE_SPACE}AB", "C", f"{BPE_SPACE}D"]) == ["ABC", "D"]
    assert score_units_for("kaldi_dir", "phones")(["k", "ae"]) == ["k", "ae"]


def test_sclite_summary_counts_per_speaker_and_cer():
    refs = [["THE", "CAT"], ["A", "MAT"], ["SAT"]]
    hyps = [["THE", "HAT", "ON"], ["A", "MAT"], []]
    spk = ["s1", "s2", "s1"]
    text = sclite_summary(spk, refs, hyps, with_cer=True)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| s")}
    assert set(rows) == {"s1", "s2"}
    c1 = align(refs[0], hyps[0])[1] + align(refs[2], hyps[2])[1]
    fields = rows["s1"].split("|")[3].split()
    assert [int(x) for x in fields[1:4]] == [c1.sub, c1.dele, c1.ins]
    total = sum((align(r, h)[1] for r, h in zip(refs, hyps, strict=True)), start=align([], [])[1])
    assert f"WER {100 * total.rate:.2f}%" in text
    cc = character_counts(refs, hyps)
    assert cc.ref_tokens == sum(len(" ".join(r)) for r in refs)
    assert f"CER {100 * cc.rate:.2f}%" in text
