"""CTC decoding speed: batched greedy decoding and prefix beam search (beams 4/16/64, with and without top-k).

Inputs are (T=1000, V=62) log probs, "random" (flat-ish, the worst case for beam search) and "peaky" (blank
dominated with confident spikes, what a trained CTC model emits). Times are medians over repeats, in ms per
utterance; the real-time factor assumes 1,000 frames = 10 s of audio (10 ms frame shift). If ``pyctcdecode``
is importable it is timed at the same beam (without a language model) for comparison; the project does not
need it.

Prints a JSON object and a table. Run: ``.venv/bin/python bench/bench_decode.py [--threads 2] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import string
import time
from collections.abc import Callable

import numpy as np
import torch

from lstm_asr.ctc_decode import greedy_decode, prefix_beam_search


def make_inputs(kind: str, batch: int, frames: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """(B, T, V) float32 log probs of the given kind."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, generator=gen)
    if kind == "peaky":
        path = torch.randint(1, vocab, (batch, frames), generator=gen)
        path[torch.rand(batch, frames, generator=gen) < 0.7] = 0
        logits.scatter_(2, path.unsqueeze(2), 10.0)
    return torch.log_softmax(logits, dim=-1)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def pyctcdecode_decoder(vocab: int) -> object | None:
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        return None
    # Blank is "" at index 0; no space among the labels so pyctcdecode does no word handling.
    labels = [""] + list((string.ascii_letters + string.digits)[: vocab - 1])
    return build_ctcdecoder(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=62)
    ap.add_argument("--greedy-batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    audio_ms = args.frames * 10.0
    decoder = pyctcdecode_decoder(args.vocab)

    rows: list[dict[str, object]] = []

    def add(kind: str, method: str, beam: int | None, pruning: str, ms: float) -> None:
        rows.append({"input": kind, "method": method, "beam": beam, "pruning": pruning,
                     "ms_per_utt": round(ms, 3), "rtf": round(ms / audio_ms, 5)})

    for kind in ("random", "peaky"):
        batch = make_inputs(kind, args.greedy_batch, args.frames, args.vocab)
        lengths = torch.full((args.greedy_batch,), args.frames)
        ms = median_ms(lambda b=batch, n=lengths: greedy_decode(b, n), args.repeats) / args.greedy_batch
        add(kind, "greedy (batched)", None, "-", ms)
        utt = batch[0]
        utt_np = utt.double().numpy()
        for beam in (4, 16, 64):
            for pruning, kw in (("none", {}), ("top-k 16", {"token_top_k": 16}),
                                ("min logp -5", {"token_min_logprob": -5.0}),
                                ("min logp -5, prune 10",
                                 {"token_min_logprob": -5.0, "beam_prune_logprob": 10.0})):
                ms = median_ms(lambda u=utt_np, b=beam, k=kw: prefix_beam_search(u, beam=b, **k),
                               args.repeats)
                add(kind, "prefix_beam_search", beam, pruning, ms)
            if decoder is not None:
                logits = utt.numpy()
                ms = median_ms(lambda lg=logits, b=beam: decoder.decode_beams(lg, beam_width=b),  # type: ignore
                               args.repeats)
                add(kind, "pyctcdecode", beam, "min logp -5, prune 10", ms)

    result = {"rows": rows, "config": vars(args), "pyctcdecode": decoder is not None,
              "torch_threads": torch.get_num_threads()}
    print(json.dumps(result, indent=2))
    print(f"{'input':<7} {'method':<19} {'beam':>4} {'pruning':<24} {'ms/utt':>9} {'RTF':>8}")
    for r in rows:
        beam = "-" if r["beam"] is None else r["beam"]
        print(f"{r['input']:<7} {r['method']:<19} {beam:>4} {r['pruning']:<24} {r['ms_per_utt']:>9.2f} "
              f"{r['rtf']:>8.4f}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
