"""Decoding a prepared split (the feature store) in length-bucketed batches: dev decoding during training,
``lstm-asr evaluate``, and the results of a finished run."""

from __future__ import annotations

import torch

from lstm_asr.data.batching import bucket_batches
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.decoding.ctc_decode import beam_search_batch, greedy_decode
from lstm_asr.decoding.search import Decoder, SearchConfig
from lstm_asr.decoding.transducer_search import TransducerSearcher
from lstm_asr.nn.model import BLSTMEncoder
from lstm_asr.nn.networks import is_transducer


@torch.inference_mode()
def decode_split(model: BLSTMEncoder, split: FeatureSplit, beam: int = 1, token_top_k: int = 0,
                 max_frames: int = 40000, max_batch: int = 64, search: Decoder | None = None) -> list[list[int]]:
    """Decode every utterance of a prepared split; returns label ids per utterance in split order.

    ``search`` (e.g. a :class:`lstm_asr.decoding.search.Searcher`, for LM decoding) replaces greedy/beam search: it maps
    (log_probs, lengths) to N-best lists per utterance, of which the best is kept. A transducer model's outputs
    are its encoder frames, searched by :class:`~lstm_asr.decoding.transducer_search.TransducerSearcher`.
    """
    if search is None and is_transducer(model):
        search = TransducerSearcher(model, SearchConfig(beam=beam))
    was_training = model.training
    model.eval()
    out: list[list[int]] = [[] for _ in range(len(split))]
    for idx in bucket_batches(split.num_frames, max_frames, max_batch, seed=None):
        feats, lengths, _, _ = split.batch(idx)
        # A model on a GPU (dev decoding during training) runs there; the decoders take the outputs on the CPU.
        device = next(model.parameters(), feats).device
        log_probs = model(feats.to(device), lengths.to(device)).cpu()
        lengths = model.output_lengths(lengths)  # fewer output frames when the model reduces the frame rate
        if search is not None:
            hyps = [nbest[0] for nbest in search(log_probs, lengths)]
        elif beam <= 1:
            hyps = greedy_decode(log_probs, lengths)
        else:
            hyps = beam_search_batch(log_probs, lengths, beam=beam, token_top_k=token_top_k or None)
        for i, h in zip(idx, hyps, strict=True):
            out[int(i)] = list(h.tokens)
    model.train(was_training)
    return out
