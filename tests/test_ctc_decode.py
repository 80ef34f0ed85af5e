"""Tests of CTC greedy decoding and prefix beam search (exhaustive enumeration is the reference)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from lstm_asr.decoding.ctc_decode import Hypothesis, beam_search_batch, greedy_decode, prefix_beam_search


def one_hot_log_probs(path: list[int], vocab: int, peak: float = 0.999) -> torch.Tensor:
    """(T, V) log probs whose best path is ``path``, with the rest of each frame's mass spread evenly."""
    probs = torch.full((len(path), vocab), (1.0 - peak) / (vocab - 1), dtype=torch.float64)
    probs[torch.arange(len(path)), torch.tensor(path)] = peak
    return probs.log()


def collapse(alignment: tuple[int, ...], blank: int = 0) -> tuple[int, ...]:
    out = []
    prev = None
    for a in alignment:
        if a != prev and a != blank:
            out.append(a)
        prev = a
    return tuple(out)


def exhaustive(lp: np.ndarray, blank: int = 0) -> list[tuple[tuple[int, ...], float]]:
    """All label sequences with their total log probability (summed over all V^T alignments), best first."""
    time, vocab = lp.shape
    totals: dict[tuple[int, ...], list[float]] = {}
    for alignment in itertools.product(range(vocab), repeat=time):
        score = float(lp[np.arange(time), list(alignment)].sum())
        totals.setdefault(collapse(alignment, blank), []).append(score)
    ranked = [(seq, float(np.logaddexp.reduce(scores))) for seq, scores in totals.items()]
    return sorted(ranked, key=lambda item: -item[1])


def random_log_probs(rng: np.random.Generator, time: int, vocab: int, scale: float = 1.5) -> np.ndarray:
    return torch.log_softmax(torch.from_numpy(rng.normal(size=(time, vocab)) * scale), dim=-1).numpy()


# --- greedy ---


def test_greedy_collapses_repeats_and_drops_blanks() -> None:
    # frames: a a _ a b b _ _ c   -> a a b c  (the blank between the a's keeps them apart)
    path = [1, 1, 0, 1, 2, 2, 0, 0, 3]
    hyp = greedy_decode(one_hot_log_probs(path, 4).unsqueeze(0), torch.tensor([len(path)]))[0]
    assert hyp.tokens == (1, 1, 2, 3)
    assert hyp.frames == (0, 3, 4, 8)
    assert hyp.end_frames == (1, 3, 5, 8)
    assert hyp.score == pytest.approx(len(path) * math.log(0.999))


def test_greedy_nonzero_blank_and_all_blank() -> None:
    path = [2, 0, 0, 2, 1, 1]  # blank is 2 here: 0 0 collapses, 1 1 collapses
    hyp = greedy_decode(one_hot_log_probs(path, 3).unsqueeze(0), torch.tensor([6]), blank=2)[0]
    assert hyp.tokens == (0, 1)
    assert hyp.frames == (1, 4)
    empty = greedy_decode(one_hot_log_probs([0, 0, 0], 3).unsqueeze(0), torch.tensor([3]))[0]
    assert empty == Hypothesis((), pytest.approx(3 * math.log(0.999)), (), ())


def test_greedy_ignores_padding_and_batch_matches_single() -> None:
    paths = [[1, 1, 0, 2], [3, 0, 3, 3, 1, 0, 2], [0, 2, 2]]
    time = 9
    batch = torch.zeros(len(paths), time, 4, dtype=torch.float64)
    lengths = torch.tensor([len(p) for p in paths])
    for b, p in enumerate(paths):
        # The padding's best path is label 1 right after the last valid frame: it must not leak into results.
        batch[b] = one_hot_log_probs(p + [1] * (time - len(p)), 4)
    hyps = greedy_decode(batch, lengths)
    assert [h.tokens for h in hyps] == [(1, 2), (3, 3, 1, 2), (2,)]
    for b, p in enumerate(paths):
        alone = greedy_decode(one_hot_log_probs(p, 4).unsqueeze(0), torch.tensor([len(p)]))[0]
        assert (hyps[b].tokens, hyps[b].frames, hyps[b].end_frames) == (
            alone.tokens, alone.frames, alone.end_frames)
        assert hyps[b].score == pytest.approx(alone.score, abs=1e-12)
    # Run that continues into the padding: its end frame is the last valid frame.
    assert hyps[2].end_frames == (2,)


def test_greedy_zero_length_utterance() -> None:
    lp = one_hot_log_probs([1, 2, 3], 4).unsqueeze(0).repeat(2, 1, 1)
    hyps = greedy_decode(lp, torch.tensor([0, 3]))
    assert hyps[0] == Hypothesis((), 0.0)
    assert hyps[1].tokens == (1, 2, 3)


# --- prefix beam search vs exhaustive search ---


@pytest.mark.parametrize("seed", range(12))
def test_beam_search_matches_exhaustive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    time = int(rng.integers(1, 7))
    vocab = int(rng.integers(2, 5))
    lp = random_log_probs(rng, time, vocab)
    ranked = exhaustive(lp)
    # At most (V-1)^0 + ... + (V-1)^T distinct prefixes: a beam this wide never prunes; the search is exact.
    wide = sum((vocab - 1) ** n for n in range(time + 1))
    hyps = prefix_beam_search(lp, beam=wide, nbest=5)
    assert len(hyps) == min(5, len(ranked))
    for hyp, (seq, score) in zip(hyps, ranked, strict=False):
        assert hyp.tokens == seq
        assert hyp.score == pytest.approx(score, abs=1e-9)
        assert len(hyp.frames) == len(hyp.tokens)
        assert list(hyp.frames) == sorted(set(hyp.frames))  # one token per frame, in time order


@pytest.mark.parametrize("seed", range(4))
def test_beam_search_exhaustive_with_nonzero_blank_and_repeats(seed: int) -> None:
    # Few labels make repeated labels ("a a" vs "a") common: this checks the repeat-needs-a-blank rule.
    rng = np.random.default_rng(100 + seed)
    lp = random_log_probs(rng, 6, 3, scale=0.7)
    ranked = exhaustive(lp, blank=1)
    hyps = prefix_beam_search(lp, beam=200, blank=1, nbest=4)
    assert [h.tokens for h in hyps] == [seq for seq, _ in ranked[:4]]
    assert [h.score for h in hyps] == pytest.approx([s for _, s in ranked[:4]], abs=1e-9)


def test_small_beam_scores_are_lower_bounds() -> None:
    # With pruning a prefix loses the alignments that went through dropped prefixes, never gains any.
    for seed in range(5):
        rng = np.random.default_rng(200 + seed)
        lp = random_log_probs(rng, 6, 4)
        truth = dict(exhaustive(lp))
        for beam in (1, 2, 3):
            for hyp in prefix_beam_search(lp, beam=beam, nbest=beam):
                assert hyp.score <= truth[hyp.tokens] + 1e-9


# --- peaky inputs, pruning, beam=1 ---


def peaky_batch(
    seed: int, batch: int = 3, time: int = 60, vocab: int = 12
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blank-dominated random paths with confident spikes, as a trained CTC model emits."""
    gen = torch.Generator().manual_seed(seed)
    paths = torch.randint(1, vocab, (batch, time), generator=gen)
    paths[torch.rand(batch, time, generator=gen) < 0.6] = 0
    logits = torch.randn(batch, time, vocab, generator=gen, dtype=torch.float64)
    logits.scatter_(2, paths.unsqueeze(2), 12.0)
    lengths = torch.randint(time // 2, time + 1, (batch,), generator=gen)
    lengths[0] = time
    return torch.log_softmax(logits, dim=-1), lengths


@pytest.mark.parametrize("seed", range(3))
def test_beam_search_on_peaky_input_gives_greedy_result(seed: int) -> None:
    lp, lengths = peaky_batch(seed)
    greedy = greedy_decode(lp, lengths)
    for beam in (1, 4, 16):
        hyps = beam_search_batch(lp, lengths, beam=beam)
        assert [h.tokens for h in hyps] == [g.tokens for g in greedy]
        assert [h.frames for h in hyps] == [g.frames for g in greedy]
        # The label sequence's total probability is at least its best path's.
        assert all(h.score >= g.score - 1e-9 for h, g in zip(hyps, greedy, strict=True))


@pytest.mark.parametrize("seed", range(3))
def test_token_pruning_keeps_peaky_result(seed: int) -> None:
    lp, lengths = peaky_batch(seed)
    reference = beam_search_batch(lp, lengths, beam=8)
    for kw in ({"token_top_k": 1}, {"token_top_k": 3}, {"token_min_logprob": -5.0},
               {"token_top_k": 2, "token_min_logprob": -1.0}, {"beam_prune_logprob": 10.0}):
        pruned = beam_search_batch(lp, lengths, beam=8, **kw)
        assert [h.tokens for h in pruned] == [h.tokens for h in reference], kw
        assert [h.score for h in pruned] == pytest.approx([h.score for h in reference], abs=1e-3), kw


def test_token_pruning_restricts_extensions() -> None:
    # Label 2 is the weaker of the two labels in every frame; with top-1 pruning it can never be appended.
    probs = torch.tensor([[0.5, 0.4, 0.1]] * 4, dtype=torch.float64)
    lp = probs.log()
    assert any(2 in h.tokens for h in prefix_beam_search(lp, beam=8, nbest=8))
    for h in prefix_beam_search(lp, beam=8, nbest=8, token_top_k=1):
        assert 2 not in h.tokens
    for h in prefix_beam_search(lp, beam=8, nbest=8, token_min_logprob=math.log(0.45)):
        assert h.tokens == ()  # only blank (never pruned) survives the threshold; blank is also the argmax


def test_token_min_logprob_prunes_blank_and_stays_like_pyctcdecode() -> None:
    # Frame 1: label 1 dominates; blank and label 2 sit below e^-5. Under pyctcdecode's rule neither may be used
    # there, so the prefix (2,) -- which needs a blank or a repeated 2 in frame 1 -- cannot survive.
    probs = torch.tensor([[0.6, 0.0, 0.4], [0.005, 0.99, 0.005]], dtype=torch.float64).clamp_min(1e-12)
    lp = probs.log()
    full = {h.tokens for h in prefix_beam_search(lp, beam=8, nbest=8)}
    assert (2,) in full and (1,) in full and (2, 1) in full
    pruned = prefix_beam_search(lp, beam=8, nbest=8, token_min_logprob=-5.0)
    assert {h.tokens for h in pruned} == {(1,), (2, 1)}
    # Scores count the surviving alignments only: (1,) is "blank 1" (label 1 is pruned in frame 0).
    by_tokens = {h.tokens: h.score for h in pruned}
    assert by_tokens[(1,)] == pytest.approx(math.log(0.6 * 0.99), abs=1e-9)
    assert by_tokens[(2, 1)] == pytest.approx(math.log(0.4 * 0.99), abs=1e-9)


def test_beam_one_is_well_defined() -> None:
    rng = np.random.default_rng(7)
    lp = random_log_probs(rng, 30, 5)
    hyps = prefix_beam_search(lp, beam=1, nbest=3)
    assert len(hyps) == 1 and math.isfinite(hyps[0].score)
    assert hyps == prefix_beam_search(torch.from_numpy(lp), beam=1)  # deterministic, tensor or array input
    assert all(0 <= tok < 5 and tok != 0 for tok in hyps[0].tokens)


def test_edge_cases() -> None:
    assert prefix_beam_search(torch.zeros(0, 5)) == [Hypothesis((), 0.0)]
    with pytest.raises(ValueError):
        prefix_beam_search(torch.zeros(3, 5), beam=0)
    with pytest.raises(ValueError):
        prefix_beam_search(torch.zeros(2, 3, 5))
    hyps = prefix_beam_search(one_hot_log_probs([1, 0, 1], 3), beam=4, nbest=10)
    assert hyps[0].tokens == (1, 1)
    assert 1 < len(hyps) <= 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


# --- confident-stretch fast path ---


@pytest.mark.parametrize("seed", range(8))
def test_confident_stretches_match_frame_by_frame(seed: int) -> None:
    # Peakiness from barely confident to very confident, so stretches start and stop in many places
    # (empty prefix, repeated labels across blanks, stretches ending mid-run).
    gen = torch.Generator().manual_seed(seed)
    time, vocab = 150, 6
    paths = torch.randint(1, vocab, (time,), generator=gen)
    paths[torch.rand(time, generator=gen) < 0.6] = 0
    paths[40:44] = 2  # a run, then the same label again after a blank
    paths[44] = 0
    paths[45] = 2
    logits = torch.randn(time, vocab, generator=gen, dtype=torch.float64)
    logits[torch.arange(time), paths] = (6.0, 9.0, 12.0, 20.0)[seed % 4]
    lp = torch.log_softmax(logits, dim=-1).numpy()
    for kw in ({"beam_prune_logprob": 10.0}, {"beam_prune_logprob": 4.0, "token_min_logprob": -5.0},
               {"beam_prune_logprob": 10.0, "token_min_logprob": -5.0},  # pyctcdecode's defaults
               {"beam_prune_logprob": 3.0, "token_top_k": 2}):
        fast = prefix_beam_search(lp, beam=8, nbest=3, **kw)
        slow = prefix_beam_search(lp, beam=8, nbest=3, skip_confident=False, **kw)
        assert [h.tokens for h in fast] == [h.tokens for h in slow], kw
        assert [h.frames for h in fast] == [h.frames for h in slow], kw
        assert [h.score for h in fast] == pytest.approx([h.score for h in slow], abs=1e-8), kw


def test_confident_stretch_covers_very_peaky_input() -> None:
    # On a very peaky input the whole utterance is one stretch: the closed form alone gives greedy's labels and
    # the label sequence's total probability (exact here: every other alignment is far below the pruning).
    path = [0, 0, 3, 3, 0, 3, 1, 0, 0, 2, 2, 2, 0, 1]
    lp = one_hot_log_probs(path, 4, peak=1 - 1e-9)
    fast = prefix_beam_search(lp, beam=4, beam_prune_logprob=5.0)[0]
    assert fast.tokens == (3, 3, 1, 2, 1)
    assert fast.frames == (2, 5, 6, 9, 13)
    exact = prefix_beam_search(lp, beam=64)[0]
    assert fast.score == pytest.approx(exact.score, abs=1e-6)


# --- shallow fusion with a token bigram LM ---


@pytest.mark.parametrize("seed", range(6))
def test_bigram_fusion_matches_exhaustive_search(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    time, vocab = int(rng.integers(2, 6)), 4
    lp = random_log_probs(rng, time, vocab)
    lm = rng.normal(size=(vocab + 1, vocab)) - 1.0  # any table works: row V is the sentence start
    lm[:, 0] = -np.inf
    final = rng.normal(size=vocab + 1)

    def lm_score(seq: tuple[int, ...]) -> float:
        prev, total = vocab, 0.0
        for c in seq:
            total += lm[prev, c]
            prev = c
        return total + final[prev]

    ranked = sorted(((seq, score + lm_score(seq)) for seq, score in exhaustive(lp)), key=lambda x: -x[1])
    hyps = prefix_beam_search(lp, beam=500, nbest=4, lm_scores=lm, lm_final=final)
    assert [h.tokens for h in hyps] == [seq for seq, _ in ranked[:4]]
    assert [h.score for h in hyps] == pytest.approx([s for _, s in ranked[:4]], abs=1e-9)


def test_bigram_fusion_tables_from_an_arpa_model() -> None:
    from lstm_asr.decoding.ngram import bigram_fusion_scores, build_ngram

    lm = build_ngram([["a", "b"], ["a"]], 2, "witten-bell")
    scores, final = bigram_fusion_scores(lm, ["<blank>", "a", "b"], weight=2.0, insertion=0.5)
    assert scores.shape == (4, 3) and np.isneginf(scores[:, 0]).all()
    # From the hand computation in test_ngram: p(a | <s>) = 0.78125, p(b | a) = 0.359375, p(</s> | b) = 0.671875.
    assert scores[3, 1] == pytest.approx(2 * math.log(0.78125) + 0.5)
    assert scores[1, 2] == pytest.approx(2 * math.log(0.359375) + 0.5)
    assert final[2] == pytest.approx(2 * math.log(0.671875))
