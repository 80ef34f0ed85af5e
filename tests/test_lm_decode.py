"""LM decoding through flashlight (lexicon-free and lexicon), bad lexicons/LMs, and batch decoding via the CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, same_threads

from data_prep.audio import load_audio
from lstm_asr.decoding.lm_decode import LMDecoder, LMDecoderConfig
from lstm_asr.decoding.ngram import build_ngram
from lstm_asr.decoding.search import SearchConfig, Searcher
from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.recognizer import Recognizer

# flashlight-text is the optional "lm" extra: tests of the flashlight decoder need it, the rest do not.
needs_flashlight = pytest.mark.skipif(importlib.util.find_spec("flashlight") is None,
                                      reason="flashlight-text (the lm extra) is not installed")

TOKENS = ["<blank>", "a", "b", "c"]


def frames(*rows: list[float]) -> torch.Tensor:
    """(1, T, 4) log-probs from per-frame probabilities."""
    return torch.tensor([rows], dtype=torch.float32).log()


def ambiguous() -> torch.Tensor:
    # c, then a frame where a and b are equally likely (a by a hair), then blank.
    return frames([0.05, 0.05, 0.05, 0.85], [0.9, 0.05, 0.05, 0.0001], [0.1, 0.44, 0.45, 0.01],
                  [0.9, 0.05, 0.04, 0.01])


@needs_flashlight
def test_bigram_lm_resolves_acoustic_ambiguity(tmp_path: Path) -> None:
    lm = tmp_path / "lm.arpa"
    build_ngram([["c", "a"]] * 20 + [["b"]], 2, "witten-bell").write_arpa(lm)
    no_lm = LMDecoder(TOKENS, LMDecoderConfig(beam=8)).decode(ambiguous())[0][0]
    assert no_lm.tokens == (3, 2)  # acoustics alone: c b
    with_lm = LMDecoder(TOKENS, LMDecoderConfig(lm=str(lm), lm_weight=2.0, beam=8, nbest=3)).decode(ambiguous())[0]
    assert with_lm[0].tokens == (3, 1)  # the LM says a follows c
    assert len(with_lm) > 1 and with_lm[0].score >= with_lm[1].score
    assert with_lm[0].frames == (0, 2)


def test_token_insertion_score_with_our_bigram_fusion(tmp_path: Path) -> None:
    lm = tmp_path / "lm.arpa"
    build_ngram([["a", "b", "c"]], 2, "kneser-ney").write_arpa(lm)
    lp = torch.log_softmax(torch.randn(1, 40, 4, generator=torch.Generator().manual_seed(0)) * 2, dim=-1)
    counts = [len(Searcher(TOKENS, SearchConfig(beam=16, lm=str(lm), word_score=ws))(lp, torch.tensor([40]))[0][0]
                  .tokens) for ws in (-6.0, 0.0, 6.0)]
    assert counts[0] < counts[1] < counts[2]
    # The same LM resolves the ambiguity as flashlight does.
    lm2 = tmp_path / "ca.arpa"
    build_ngram([["c", "a"]] * 20 + [["b"]], 2, "witten-bell").write_arpa(lm2)
    best = Searcher(TOKENS, SearchConfig(beam=8, lm=str(lm2), lm_weight=2.0))(ambiguous(), torch.tensor([4]))[0][0]
    assert best.tokens == (3, 1)
    # flashlight's lexicon-free decoder has no insertion score: asking for one is an error, not ignored.
    with pytest.raises(LstmAsrError, match="no insertion score"):
        LMDecoder(TOKENS, LMDecoderConfig(lm=str(lm), word_score=1.0))


@needs_flashlight
def test_lexicon_decoding_outputs_words(tmp_path: Path) -> None:
    lex = tmp_path / "words.lex"
    lex.write_text("ca c a\ncb c b\nb b\n")
    lm = tmp_path / "words.arpa"
    build_ngram([["ca"]] * 5 + [["cb"]], 2, "witten-bell").write_arpa(lm)
    hyp = LMDecoder(TOKENS, LMDecoderConfig(lm=str(lm), lexicon=str(lex), lm_weight=2.0)).decode(ambiguous())[0][0]
    assert hyp.words == ("ca",) and hyp.tokens == (3, 1)


@needs_flashlight
def test_lexicon_decoding_of_a_character_model_has_no_separator_at_the_ends(tmp_path: Path) -> None:
    """A character model's word separator "|" is the lexicon decoder's silence: it comes out between words only,
    never before the first or after the last (a reference has none there, so each would be an insertion)."""
    tokens = ["<blank>", "|", "a", "b", "c"]
    lex = tmp_path / "chars.lex"
    lex.write_text("ca c a |\nb b |\n")
    lm = tmp_path / "words.arpa"
    build_ngram([["ca"], ["ca", "b"], ["b"]], 2, "witten-bell").write_arpa(lm)

    def path(*symbols: str) -> torch.Tensor:  # one frame per symbol, certain
        rows = [[0.96 if t == s else 0.01 for t in tokens] for s in symbols]
        return torch.tensor([rows], dtype=torch.float32).log()

    decoder = LMDecoder(tokens, LMDecoderConfig(lm=str(lm), lexicon=str(lex)))
    one = decoder.decode(path("c", "<blank>", "a", "<blank>"))[0][0]
    assert one.words == ("ca",) and one.tokens == (4, 2) and len(one.frames) == 2
    two = decoder.decode(path("|", "c", "a", "|", "b", "|"))[0][0]
    assert two.words == ("ca", "b") and two.tokens == (4, 2, 1, 3) and two.frames[2] == 3


@needs_flashlight
def test_bad_lexicon_and_lm_are_one_line_errors(tmp_path: Path) -> None:
    lex = tmp_path / "bad.lex"
    lex.write_text("ca c a\n\nzed c zz\n")
    with pytest.raises(LstmAsrError, match=r"bad\.lex:3: lexicon entry 'zed' uses token\(s\) the model does not "
                                           r"have: zz$"):
        LMDecoder(TOKENS, LMDecoderConfig(lexicon=str(lex)))
    lm = tmp_path / "ab.arpa"
    build_ngram([["a", "b"]], 2).write_arpa(lm)
    with pytest.raises(LstmAsrError, match=r"ab\.arpa:\d+: vocabulary misses 1 of the model's tokens: c$"):
        LMDecoder(TOKENS, LMDecoderConfig(lm=str(lm)))
    broken = tmp_path / "broken.arpa"
    broken.write_text(lm.read_text().replace("\\2-grams:", "\\2-grams"))
    with pytest.raises(LstmAsrError, match=r"broken\.arpa:\d+: "):
        LMDecoder(TOKENS, LMDecoderConfig(lm=str(broken)))


def test_decode_cli_folder_list_nbest_json_and_lm(trained_exp: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    speaker = sorted((tiny_corpus / "TRAIN").glob("*/*"))[0]
    wavs = sorted(speaker.glob("*.WAV"))
    listing = tmp_path / "files.lst"
    listing.write_text("# two files\n" + "".join(f"{w}\n" for w in wavs[:2]))

    folder = run_cli("decode", "--model", str(trained_exp), str(speaker))
    assert folder.returncode == 0, folder.stderr
    lines = folder.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(w) for w in wavs]
    assert f"{len(wavs)} of {len(wavs)} files decoded" in folder.stderr and "RTF" in folder.stderr

    nbest = run_cli("decode", "--model", str(trained_exp), "--beam", "8", "--nbest", "3", "--json", str(listing))
    assert nbest.returncode == 0, nbest.stderr
    rows = [json.loads(x) for x in nbest.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(w) for w in wavs[:2]]
    one_best = run_cli("decode", "--model", str(trained_exp), "--beam", "8", "--json", str(listing))
    assert one_best.returncode == 0, one_best.stderr
    # What holds by construction, whatever this model outputs on this CPU: at most N hypotheses (fewer when fewer
    # distinct label sequences survive the beam), distinct, best first, the first being the 1-best output. That
    # exactly N come back when N exist is tested on hand-built log-probs (test_ctc_decode.py).
    for r, single in zip(rows, (json.loads(x) for x in one_best.stdout.splitlines()), strict=True):
        scores = [h["score"] for h in r["nbest"]]
        assert 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True)
        assert len({h["text"] for h in r["nbest"]}) == len(scores)
        assert r["nbest"][0]["text"] == r["text"] == single["text"]
        assert [t["token"] for t in r["tokens"]] == r["text"].split()

    # A phone bigram from the experiment's training transcripts, fused into the beam search: the CLI gives exactly
    # what the same search with that LM gives here, and its scores include the LM's (negative) log-probabilities.
    arpa = tmp_path / "bigram.arpa"
    build = run_cli("lm", "build", str(trained_exp), "--order", "2", "-o", str(arpa))
    assert build.returncode == 0, build.stderr
    # One file a batch at this process's thread count: the CLI computes exactly the log-probs the reference below
    # computes file by file, so the comparison holds by construction on any CPU.
    with_lm = run_cli("decode", "--model", str(trained_exp), "--lm", str(arpa), "--lm-weight", "0.5", "--json",
                      "--batch-size", "1", *same_threads(), str(listing))
    assert with_lm.returncode == 0, with_lm.stderr
    assert "beam 16, LM" in with_lm.stderr and "lexicon-free" in with_lm.stderr
    lm_rows = [json.loads(x) for x in with_lm.stdout.splitlines()]
    assert [r["file"] for r in lm_rows] == [str(w) for w in wavs[:2]]
    rec = Recognizer.load(trained_exp)
    searchers = [Searcher(rec.tokens, SearchConfig.for_experiment(trained_exp, lm=str(arpa), lm_weight=weight))
                 for weight in (0.5, 0.0)]
    for row, wav in zip(lm_rows, wavs[:2], strict=True):
        lp = rec.log_probs(load_audio(wav, 16000)).unsqueeze(0)
        best, acoustic = (s(lp, torch.tensor([lp.shape[1]]))[0][0] for s in searchers)
        assert [t["token"] for t in row["tokens"]] == [rec.tokens[i] for i in best.tokens]
        assert row["score"] == pytest.approx(best.score, abs=1e-3)
        # The LM only subtracts (weight 0.5 of a log-probability below 0 for every token): strictly when the
        # best hypothesis has a token, whatever this model outputs.
        assert best.score <= acoustic.score + 1e-9
        assert not best.tokens or best.score < acoustic.score - 1e-2

    missing = tmp_path / "missing.lst"
    missing.write_text(f"{wavs[0]}\nnot_there.wav\n")
    bad = run_cli("decode", "--model", str(trained_exp), str(missing))
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {missing}:2: no such audio file: not_there.wav"


def test_spelling_lexicon_spells_known_words_and_counts_the_rest(tmp_path: Path) -> None:
    from lstm_asr.decoding.lm_decode import read_lexicon, spelling_lexicon

    tokens = ["<blank>", "|", "'", "A", "B", "D", "E"]
    entries, left_out = spelling_lexicon([["BAD", "BED"], ["BAD", "ADE'", "CAB"], ["DAB"]], tokens)
    assert entries == [("ADE'", ["A", "D", "E", "'", "|"]), ("BAD", ["B", "A", "D", "|"]),
                       ("BED", ["B", "E", "D", "|"]), ("DAB", ["D", "A", "B", "|"])]
    assert dict(left_out) == {"CAB": 1}  # C is not one of the model's characters
    path = tmp_path / "lexicon.txt"
    path.write_text("".join(f"{w} {' '.join(s)}\n" for w, s in entries))
    assert read_lexicon(path, tokens)["BAD"] == [["B", "A", "D", "|"]]  # what the decoder will read back
    with pytest.raises(LstmAsrError, match="character model"):
        spelling_lexicon([["AA"]], ["<blank>", "aa", "b"])
