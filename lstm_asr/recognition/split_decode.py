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

# Utterances per batch when the caller gives none. On the CPU, batches of 16 decoded the demo's dev split (400
# utterances, 3x250 BLSTM, 2 threads) in 6.8 s against 7.8 s at 64 and 7.3 s at 8 (bench/RESULTS.md, issue 16):
# larger batches' gate tensors outgrow the caches. Accelerators want large batches.
CPU_MAX_BATCH = 16
ACCELERATOR_MAX_BATCH = 64


@torch.inference_mode()
def decode_split(model: BLSTMEncoder, split: FeatureSplit, beam: int = 1, token_top_k: int = 0,
                 max_frames: int = 40000, max_batch: int | None = None,
                 search: Decoder | None = None) -> list[list[int]]:
    """Decode every utterance of a prepared split; returns label ids per utterance in split order.

    ``search`` (e.g. a :class:`lstm_asr.decoding.search.Searcher`, for LM decoding) replaces greedy/beam search: it maps
    (log_probs, lengths) to N-best lists per utterance, of which the best is kept. A transducer model's outputs
    are its encoder frames, searched by :class:`~lstm_asr.decoding.transducer_search.TransducerSearcher`.
    ``max_batch`` None: 16 utterances per batch on the CPU, 64 on an accelerator.
    """
    if search is None and is_transducer(model):
        search = TransducerSearcher(model, SearchConfig(beam=beam))
    was_training = model.training
    model.eval()
    # A model on a GPU (dev decoding during training) runs there; the decoders take the outputs on the CPU.
    device = next(model.parameters(), torch.empty(0)).device
    if max_batch is None:
        max_batch = CPU_MAX_BATCH if device.type == "cpu" else ACCELERATOR_MAX_BATCH
    out: list[list[int]] = [[] for _ in range(len(split))]
    for idx in bucket_batches(split.num_frames, max_frames, max_batch, seed=None):
        feats, lengths, _, _ = split.batch(idx)
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
