"""n-gram LM estimation and ARPA files: hand-computed probabilities, round trips, flashlight loading, bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from conftest import run_cli

from lstm_asr.decoding.ngram import build_ngram, check_vocab, read_arpa
from lstm_asr.errors import LstmAsrError

# Two sentences; the vocabulary is a, b, </s>, <unk> (4 words: the uniform floor is 1/4).
TEXT = [["a", "b"], ["a"]]


def test_witten_bell_bigram_round_trip_against_hand_computation(tmp_path: Path) -> None:
    lm = build_ngram(TEXT, 2, "witten-bell")
    arpa = tmp_path / "wb.arpa"
    lm.write_arpa(arpa)
    loaded = read_arpa(arpa)
    # Unigrams: counts a 2, b 1, </s> 2 (N = 5, 3 types): p(w) = (c(w) + 3/4) / (5 + 3).
    p_a, p_b = 2.75 / 8, 1.75 / 8
    # p(w | h) = (c(h w) + T(h) p(w)) / (c(h) + T(h)) with T(h) the number of distinct followers of h.
    p_a_bos = (2 + 1 * p_a) / (2 + 1)
    p_b_a = (1 + 2 * p_b) / (2 + 2)
    p_eos_b = (1 + 1 * (2.75 / 8)) / (1 + 1)
    assert loaded.score_sentence(["a", "b"]) == pytest.approx(math.log10(p_a_bos * p_b_a * p_eos_b), abs=1e-6)
    # An unseen bigram backs off: p(a | b) = bow(b) p(a), bow(b) = T(b) / (c(b) + T(b)) = 1/2.
    assert loaded.log10_prob("a", ["b"]) == pytest.approx(math.log10(0.5 * p_a), abs=1e-6)


def test_kneser_ney_bigram_round_trip_against_hand_computation(tmp_path: Path) -> None:
    lm = build_ngram(TEXT, 2, "kneser-ney")
    arpa = tmp_path / "kn.arpa"
    lm.write_arpa(arpa)
    loaded = read_arpa(arpa)
    # Bigram counts {<s> a: 2, a b: 1, b </s>: 1, a </s>: 1}: n1 = 3, n2 = 1, D2 = 3 / (3 + 2) = 0.6.
    # Unigram continuation counts: a 1 (after <s>), b 1 (after a), </s> 2 (after a, b): total 4,
    # n1 = 2, n2 = 1, D1 = 0.5, interpolation weight 0.5 * 3 / 4 with the uniform 1/4.
    p_a = p_b = 0.5 / 4 + 0.375 * 0.25
    p_eos = 1.5 / 4 + 0.375 * 0.25
    p_a_bos = (2 - 0.6) / 2 + (0.6 * 1 / 2) * p_a
    p_b_a = (1 - 0.6) / 2 + (0.6 * 2 / 2) * p_b
    p_eos_b = (1 - 0.6) / 1 + (0.6 * 1 / 1) * p_eos
    assert loaded.score_sentence(["a", "b"]) == pytest.approx(math.log10(p_a_bos * p_b_a * p_eos_b), abs=1e-6)
    assert loaded.log10_prob("zzz", ["a"]) == pytest.approx(math.log10(0.6 * 0.375 * 0.25), abs=1e-6)  # <unk>


@pytest.mark.parametrize("method", ["kneser-ney", "witten-bell"])
@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_history_is_a_distribution(tmp_path: Path, method: str, order: int) -> None:
    text = [s.split() for s in ("a b a c", "b a", "a a b", "c", "b c a b")]
    lm = build_ngram(text, order, method, vocab=["d"])
    lm.write_arpa(tmp_path / "lm.arpa")
    loaded = read_arpa(tmp_path / "lm.arpa")
    words = sorted(loaded.vocab - {"<s>"})
    assert "d" in words and "<unk>" in words  # extra vocabulary gets mass, though never seen
    for history in ([], ["<s>"], ["a"], ["<s>", "a"], ["b", "a"], ["d"], ["c", "d"]):
        total = sum(10 ** loaded.log10_prob(w, history) for w in words)
        assert total == pytest.approx(1.0, abs=1e-5), history


def test_arpa_loads_in_flashlight_with_the_same_scores(tmp_path: Path) -> None:
    pytest.importorskip("flashlight.lib.text.decoder")
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import create_word_dict

    lm = build_ngram([s.split() for s in ("a b a c", "b a", "a a b", "c")], 3, "kneser-ney")
    lm.write_arpa(tmp_path / "lm.arpa")
    words = create_word_dict({w: [[w]] for w in ("a", "b", "c", "<unk>")})
    kenlm = KenLM(str(tmp_path / "lm.arpa"), words)
    state, total = kenlm.start(False), 0.0
    for w in ("b", "a", "c"):
        state, score = kenlm.score(state, words.get_index(w))
        total += score
    total += kenlm.finish(state)[1]
    assert total == pytest.approx(lm.score_sentence(["b", "a", "c"]), abs=1e-4)


def test_lm_build_cli_from_text(tmp_path: Path) -> None:
    text = tmp_path / "phones.txt"
    text.write_text("h# sh iy h#\nh# iy sh h#\n\n")
    out = tmp_path / "bigram.arpa"
    res = run_cli("lm", "build", str(text), "--order", "2", "--smoothing", "witten-bell", "-o", str(out))
    assert res.returncode == 0, res.stderr
    lm = read_arpa(out)
    assert lm.order == 2 and {"h#", "sh", "iy"} <= lm.vocab
    chars = run_cli("lm", "build", str(text), "--units", "chars", "-o", str(tmp_path / "c.arpa"))
    assert chars.returncode == 0, chars.stderr
    assert "#" in read_arpa(tmp_path / "c.arpa").vocab


GOOD = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t<s>\t-0.3\n-0.5\ta\n-0.4\t</s>\n\n" \
       "\\2-grams:\n-0.2\t<s> a\n\n\\end\\\n"


@pytest.mark.parametrize(("text", "line", "problem"), [
    (GOOD.replace("\\data\\", "data"), 1, "header"),
    (GOOD.replace("-0.5\ta", "-0.5\ta b c"), 7, "fields"),
    (GOOD.replace("-0.5\ta", "oops\ta"), 7, "not a number"),
    (GOOD.replace("-0.5\ta", "0.5\ta"), 7, "<= 0"),
    (GOOD.replace("\\end\\\n", ""), None, "truncated"),
    (GOOD.replace("ngram 2=1", "ngram 2=2"), None, "declares 2 2-grams"),
    (GOOD.replace("\\2-grams:", "\\3-grams:"), 10, "not declared"),
])
def test_malformed_arpa_is_a_one_line_error_naming_file_and_line(tmp_path: Path, text: str, line: int | None,
                                                                 problem: str) -> None:
    bad = tmp_path / "bad.arpa"
    bad.write_text(text)
    with pytest.raises(LstmAsrError) as err:
        read_arpa(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and problem in msg
    if line is not None:
        assert msg.startswith(f"{bad}:{line}:")


def test_arpa_vocabulary_missing_model_tokens(tmp_path: Path) -> None:
    (tmp_path / "lm.arpa").write_text(GOOD)
    lm = read_arpa(tmp_path / "lm.arpa")
    check_vocab(tmp_path / "lm.arpa", lm, ["a"])
    with pytest.raises(LstmAsrError, match=r"lm\.arpa:5: vocabulary misses 2 of the model's tokens: sh, iy"):
        check_vocab(tmp_path / "lm.arpa", lm, ["a", "sh", "iy"])
