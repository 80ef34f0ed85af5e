"""CTC searches that continue from their state as log-probabilities arrive in blocks (streaming decoding).

:class:`GreedyStream` is best-path decoding carried across blocks (a token repeated across a block boundary is
still one token); :class:`BeamStream` is :class:`~lstm_asr.decoding.ctc_decode.PrefixBeamSearch` with the pruning
and token-LM fusion that whole-file decoding uses (:class:`~lstm_asr.decoding.search.Searcher`). Both give, after
the last block, what the whole-utterance search gives on the same frames (tests/test_streaming.py), and a partial
hypothesis after every block.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from lstm_asr.decoding.ctc_decode import Hypothesis, PrefixBeamSearch
from lstm_asr.decoding.search import DEFAULT_BEAM_PRUNE_LOGPROB, DEFAULT_TOKEN_MIN_LOGPROB, SearchConfig, Searcher
from lstm_asr.errors import LstmAsrError


class StreamSearch(Protocol):
    """What a streaming recogniser needs of a search: feed blocks of (T, V) log-probs, read hypotheses."""

    def advance(self, log_probs: torch.Tensor) -> None: ...

    def partial(self) -> Hypothesis: ...

    def final(self, nbest: int = 1) -> list[Hypothesis]: ...


class GreedyStream:
    """Best-path decoding across blocks: the running argmax path, collapsed and blank-free."""

    def __init__(self, blank: int = 0) -> None:
        self.blank = blank
        self.tokens: list[int] = []
        self.frames: list[int] = []
        self.end_frames: list[int] = []
        self.score = 0.0
        self.prev = -1  # the previous frame's best token (-1: none yet)
        self.frames_done = 0

    def advance(self, log_probs: torch.Tensor) -> None:
        if log_probs.shape[0] == 0:
            return
        best_lp, best = log_probs.max(dim=-1)
        self.score += float(best_lp.double().sum())
        best_list = best.tolist()
        path = np.asarray([self.prev, *best_list])
        starts = np.flatnonzero((path[1:] != self.blank) & (path[1:] != path[:-1]))
        # A run of the last emitted token that goes on in this block extends that token's end frame.
        if self.tokens and best_list[0] == self.prev and self.prev != self.blank:
            run = np.flatnonzero(path[1:] != self.prev)
            self.end_frames[-1] = self.frames_done + (int(run[0]) if run.size else len(best_list)) - 1
        # Each run ends where the path next changes (or at the block's end, to be extended by the next block).
        run_ends = np.append(np.flatnonzero(path[2:] != path[1:-1]), len(best_list) - 1)
        ends = run_ends[np.searchsorted(run_ends, starts)]
        self.tokens.extend(path[1:][starts].tolist())
        self.frames.extend((starts + self.frames_done).tolist())
        self.end_frames.extend((ends + self.frames_done).tolist())
        self.prev = best_list[-1]
        self.frames_done += len(best_list)

    def partial(self) -> Hypothesis:
        return Hypothesis(tuple(self.tokens), self.score, tuple(self.frames), tuple(self.end_frames))

    def final(self, nbest: int = 1) -> list[Hypothesis]:
        return [self.partial()]


class BeamStream:
    """Prefix beam search across blocks, with whole-file decoding's pruning (and token LM, when configured)."""

    def __init__(self, searcher: Searcher) -> None:
        cfg = searcher.config
        lm_scores, lm_final = searcher.fusion if searcher.fusion is not None else (None, None)
        self.search = PrefixBeamSearch(beam=cfg.lm_beam if searcher.fusion else cfg.beam,
                                       token_top_k=cfg.token_top_k or None,
                                       token_min_logprob=DEFAULT_TOKEN_MIN_LOGPROB,
                                       beam_prune_logprob=DEFAULT_BEAM_PRUNE_LOGPROB, lm_scores=lm_scores,
                                       lm_final=lm_final)

    def advance(self, log_probs: torch.Tensor) -> None:
        self.search.advance(log_probs)

    def partial(self) -> Hypothesis:
        return self.search.hypotheses(1, final=False)[0]

    def final(self, nbest: int = 1) -> list[Hypothesis]:
        return self.search.hypotheses(nbest)


def stream_search_factory(tokens: list[str], config: SearchConfig):
    """A function that makes a fresh search for each stream (segment), as ``config`` says. Lexicon decoding
    (flashlight, words) is not streamed: a one-line error says so."""
    if config.lexicon:
        raise LstmAsrError("streaming decodes with greedy or prefix beam search (and a token LM); word decoding "
                           "with --lexicon is for whole files: drop --lexicon or decode without --stream")
    searcher = Searcher(tokens, config)
    if config.beam <= 1 and searcher.fusion is None:
        return GreedyStream
    return lambda: BeamStream(searcher)
