"""Choosing the search for a batch of CTC outputs: greedy, our prefix beam search (optionally with a token LM),
or flashlight with a lexicon and word LM.

:class:`SearchConfig` gathers the decoding settings (from a recipe's ``decoding`` section, overridden by CLI
options); :class:`Searcher` turns (B, T, V) log-probs into N-best lists of :class:`Result`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lstm_asr.data.tokens import BLANK
from lstm_asr.decoding.ctc_decode import greedy_decode, prefix_beam_search
from lstm_asr.decoding.lm_decode import LMDecoder, LMDecoderConfig
from lstm_asr.decoding.ngram import bigram_fusion_scores, check_vocab, read_arpa

# Pruning of our own beam search when used for decoding (not for the exactness tests): as pyctcdecode's
# defaults, tokens below -5 and prefixes 10 below the best are dropped; the best path is not affected in practice.
DEFAULT_TOKEN_MIN_LOGPROB = -5.0
DEFAULT_BEAM_PRUNE_LOGPROB = 10.0
LM_DEFAULT_BEAM = 16  # the beam when an LM is given but the beam is left at 1 (greedy cannot use an LM)


@dataclass(frozen=True)
class Result:
    """One hypothesis: token ids, words (lexicon decoding only), score, and the frame of each token."""

    tokens: tuple[int, ...]
    score: float
    frames: tuple[int, ...]
    words: tuple[str, ...] = ()


class Decoder(Protocol):
    """What decoding a batch of network outputs means everywhere (split decoding, batch decoding, evaluate):
    padded log-probs (B, T, V) and their output lengths in, an N-best list of :class:`Result` per utterance out,
    best first. :class:`Searcher` is the CTC one."""

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Result]]: ...


@dataclass
class SearchConfig:
    beam: int = 1  # 1 = greedy (unless an LM is given)
    nbest: int = 1
    token_top_k: int = 0
    lm: str = ""
    lexicon: str = ""
    lm_weight: float = 1.0
    word_score: float = 0.0
    max_symbols: int = 4  # transducer models: labels per encoder frame at most

    @classmethod
    def from_recipe(cls, decoding: Any, **overrides: Any) -> SearchConfig:
        """Settings from a recipe's ``decoding`` section; ``overrides`` that are not None replace them."""
        cfg = cls(**{f: getattr(decoding, f) for f in ("beam", "token_top_k", "lm", "lexicon", "lm_weight",
                                                       "word_score", "max_symbols") if hasattr(decoding, f)})
        return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def for_experiment(cls, exp: str | Path, **overrides: Any) -> SearchConfig:
        """Settings from an experiment folder's ``recipe.yaml`` decoding section (defaults when there is none,
        e.g. for a checkpoint file); ``overrides`` that are not None replace them (paths become strings)."""
        from lstm_asr.recipe import load_recipe

        overrides = {k: (str(v) if isinstance(v, Path) else v) for k, v in overrides.items()}
        exp = Path(exp)
        if exp.is_dir() and (exp / "recipe.yaml").is_file():
            return cls.from_recipe(load_recipe(exp / "recipe.yaml").decoding, **overrides)
        return replace(cls(), **{k: v for k, v in overrides.items() if v is not None})

    @property
    def lm_beam(self) -> int:
        """The beam used with an LM: the configured one, or :data:`LM_DEFAULT_BEAM` when left at 1."""
        return self.beam if self.beam > 1 else LM_DEFAULT_BEAM

    @property
    def uses_lm(self) -> bool:
        return bool(self.lm or self.lexicon)

    def describe(self) -> str:
        """A short description for reports (scores.json, summaries)."""
        if self.uses_lm:
            parts = [f"{'flashlight' if self.lexicon else 'prefix'} beam search, beam {self.lm_beam}"]
            if self.lm:
                parts.append(f"LM {self.lm} weight {self.lm_weight:g}")
            parts.append(f"lexicon {self.lexicon}" if self.lexicon else "lexicon-free")
            if self.word_score:
                parts.append(f"insertion score {self.word_score:g}")
            return ", ".join(parts)
        return "greedy" if self.beam <= 1 else f"prefix beam search, beam {self.beam}"


class Searcher:
    """Decodes padded batches of log-probs with the configured search.

    Without a lexicon, a token LM is fused into our own prefix beam search (bigram view of the LM, with the
    insertion score per token); with a lexicon, decoding goes through flashlight (words, word LM).
    """

    def __init__(self, tokens: list[str], config: SearchConfig) -> None:
        self.config = config
        self.lm_decoder: LMDecoder | None = None
        self.fusion: tuple[np.ndarray, np.ndarray] | None = None
        if config.lexicon:
            self.lm_decoder = LMDecoder(tokens, LMDecoderConfig(
                lm=config.lm, lexicon=config.lexicon, lm_weight=config.lm_weight, word_score=config.word_score,
                beam=config.lm_beam, beam_size_token=config.token_top_k, nbest=config.nbest))
        elif config.lm:
            lm = read_arpa(config.lm)
            check_vocab(config.lm, lm, [t for t in tokens if t != BLANK])
            self.fusion = bigram_fusion_scores(lm, tokens, config.lm_weight, config.word_score)

    def describe(self) -> str:
        """A short description for reports (scores.json, summaries)."""
        return self.config.describe()

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Result]]:
        cfg = self.config
        if self.lm_decoder is not None:
            return [[Result(h.tokens, h.score, h.frames, h.words) for h in hyps]
                    for hyps in self.lm_decoder.decode(log_probs, lengths)]
        if cfg.beam <= 1 and self.fusion is None:
            return [[Result(h.tokens, h.score, h.frames)] for h in greedy_decode(log_probs, lengths)]
        lp = log_probs.detach().to("cpu", torch.float64).numpy()
        lm_scores, lm_final = self.fusion if self.fusion is not None else (None, None)
        out = []
        for b, n in enumerate(lengths.tolist()):
            hyps = prefix_beam_search(lp[b, :n], beam=cfg.lm_beam if self.fusion else cfg.beam, nbest=cfg.nbest,
                                      token_top_k=cfg.token_top_k or None, token_min_logprob=DEFAULT_TOKEN_MIN_LOGPROB,
                                      beam_prune_logprob=DEFAULT_BEAM_PRUNE_LOGPROB, lm_scores=lm_scores,
                                      lm_final=lm_final)
            out.append([Result(h.tokens, h.score, h.frames) for h in hyps])
        return out

