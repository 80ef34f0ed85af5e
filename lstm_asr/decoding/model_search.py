"""The search for a model's outputs: CTC models decode log-probabilities with :class:`~lstm_asr.decoding.search.
Searcher` (greedy, prefix beam search, LMs); transducer models decode encoder frames with
:class:`~lstm_asr.decoding.transducer_search.TransducerSearcher`, which has no LM fusion (its prediction network is
the model's own label LM)."""

from __future__ import annotations

from pathlib import Path

from lstm_asr.decoding.search import SearchConfig, Searcher
from lstm_asr.decoding.transducer_search import TransducerParts, TransducerSearcher
from lstm_asr.errors import LstmAsrError


def searcher_for(transducer: TransducerParts | None, tokens: list[str], config: SearchConfig,
                 source: str | Path = "") -> Searcher | TransducerSearcher:
    """The decoder for a model: ``transducer`` is its prediction and joint networks (None for a CTC model).
    ``source`` (the model's file) names the model in the one-line error for an LM with a transducer."""
    if transducer is None:
        return Searcher(tokens, config)
    if config.uses_lm:
        raise LstmAsrError(f"{source or 'this model'}: a transducer model: LM fusion (--lm/--lexicon, decoding.lm/"
                           "decoding.lexicon) is for CTC models only; its prediction network is its label LM")
    return TransducerSearcher(transducer, config)
