"""Decoding speed: model forward + greedy real-time factor, and beam searches (ours, pyctcdecode, flashlight).

For a 10 s utterance (1,000 frames at a 10 ms shift) and 62 output labels:

* ``forward``: a 3x250 BLSTM (123 inputs) forward pass + batched greedy decoding, one utterance, real-time factor
  (target: <= 0.02).
* ``beam``: our prefix beam search (:func:`lstm_asr.decoding.ctc_decode.prefix_beam_search`) at beams 4/16/64 with and
  without pruning, on "random" (flat-ish: the worst case) and "peaky" (blank-dominated with confident spikes,
  like a trained CTC model's output) inputs.
* ``compare``: ours vs pyctcdecode at beam 16 with the same pruning (token log-prob >= -5; prefixes within 10,
  then 5, of the best), peaky input, with whether both give the same best label sequence (target: ours >= 5x
  faster); torchaudio's flashlight decoder (lexicon-free, no LM) at beams 16 and 64 beside them. pyctcdecode is
  optional (``pip install --no-deps pyctcdecode pygtrie``); flashlight needs ``flashlight-text``. Rows for a
  missing package are left out and listed under ``missing``.

Times are medians over repeats, ms per utterance. Prints a JSON object and a table.
Run: ``.venv/bin/python bench/bench_decode.py [--threads 2] [--repeats 7]``.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import benchlib
import numpy as np
import torch
from benchlib import median_ms

from lstm_asr.decoding.ctc_decode import greedy_decode, prefix_beam_search
from lstm_asr.nn.model import BLSTMCTC, ModelConfig

LABELS = [""] + list(string.ascii_letters + string.digits)  # pyctcdecode labels: blank "" then 61 symbols


def make_inputs(kind: str, batch: int, frames: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """(B, T, V) float32 log probs of the given kind."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, frames, vocab, generator=gen)
    if kind == "peaky":
        path = torch.randint(1, vocab, (batch, frames), generator=gen)
        path[torch.rand(batch, frames, generator=gen) < 0.7] = 0
        logits.scatter_(2, path.unsqueeze(2), 10.0)
    return torch.log_softmax(logits, dim=-1)


def pyctcdecode_decoder(vocab: int) -> object | None:
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        return None
    # No space among the labels, so pyctcdecode does no word handling.
    return build_ctcdecoder(LABELS[:vocab])


def flashlight_decoder(vocab: int, beam: int) -> object | None:
    from lstm_asr.decoding.lm_decode import LMDecoder, LMDecoderConfig, flashlight_available

    if not flashlight_available():
        return None
    return LMDecoder(["<blank>"] + [f"t{i}" for i in range(1, vocab)], LMDecoderConfig(beam=beam))


def real_outputs(exp: Path, frames: int) -> torch.Tensor:
    """(frames, V) log-probs of a trained model on its corpus's test utterances, concatenated and cut."""
    from data_prep.audio import load_audio
    from data_prep.corpora import open_source
    from lstm_asr.recipe import load_recipe
    from lstm_asr.recognition.recognizer import Recognizer

    recipe = load_recipe(exp / "recipe.yaml")
    items = open_source(recipe.corpus.type, recipe.corpus.path, recipe.corpus).split(recipe.corpus.test_split).items
    rec = Recognizer.load(exp)
    parts, total = [], 0
    for item in items:
        lp = rec.log_probs(load_audio(item.path, rec.features.sample_rate))
        parts.append(lp)
        total += lp.shape[0]
        if total >= frames:
            break
    return torch.cat(parts)[:frames].contiguous()


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=7)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=62)
    ap.add_argument("--greedy-batch", type=int, default=16)
    ap.add_argument("--real", default="", help="Experiment folder: compare on its model's outputs for test "
                                               "utterances (concatenated to --frames) instead of synthetic ones.")
    args = ap.parse_args()
    benchlib.start(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    audio_ms = args.frames * 10.0
    missing = []

    rows: list[dict[str, object]] = []

    def add(section: str, kind: str, method: str, beam: int | None, pruning: str, ms: float, **extra: object) -> None:
        rows.append({"section": section, "input": kind, "method": method, "beam": beam, "pruning": pruning,
                     "ms_per_utt": round(ms, 3), "rtf": round(ms / audio_ms, 5), **extra})

    # --- model forward + greedy ---
    cfg = ModelConfig(input_dim=123, num_classes=args.vocab, hidden=250, layers=3)
    model = BLSTMCTC(cfg).eval()
    feats = torch.randn(1, args.frames, 123)
    lengths = torch.tensor([args.frames])

    def forward_greedy() -> object:
        with torch.inference_mode():
            return greedy_decode(model(feats, lengths), lengths)

    # One utterance is a chain of small sequential matrix products: on a busy 2-core machine a second OpenMP
    # thread mostly waits, so both thread counts are measured.
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        add("forward", "features", f"3x250 BLSTM fwd + greedy, {threads} thr", None, "-",
            median_ms(forward_greedy, args.repeats), weights=model.num_parameters())
    torch.set_num_threads(args.threads)

    # --- our beam search ---
    for kind in ("random", "peaky"):
        batch = make_inputs(kind, args.greedy_batch, args.frames, args.vocab)
        blens = torch.full((args.greedy_batch,), args.frames)
        ms = median_ms(lambda b=batch, n=blens: greedy_decode(b, n), args.repeats) / args.greedy_batch
        add("beam", kind, "greedy (batched)", None, "-", ms)
        utt_np = batch[0].double().numpy()
        for beam in (4, 16, 64):
            for pruning, kw in (("none", {}), ("top-k 16", {"token_top_k": 16}),
                                ("min logp -5, prune 10",
                                 {"token_min_logprob": -5.0, "beam_prune_logprob": 10.0})):
                ms = median_ms(lambda u=utt_np, b=beam, k=kw: prefix_beam_search(u, beam=b, **k), args.repeats)
                add("beam", kind, "ours", beam, pruning, ms)

    # --- comparison at beam 16 on peaky input ---
    if args.real:
        utt, kind = real_outputs(Path(args.real), args.frames), "model"
    else:
        utt, kind = make_inputs("peaky", 1, args.frames, args.vocab)[0], "peaky"
    utt_np = utt.double().numpy()
    greedy = greedy_decode(utt.unsqueeze(0), torch.tensor([utt.shape[0]]))[0].tokens
    vocab = utt.shape[1]
    pyctc = pyctcdecode_decoder(vocab)
    if pyctc is None:
        missing.append("pyctcdecode")
    for prune in (10.0, 5.0):
        pruning = f"min logp -5, prune {prune:g}"
        ours_best = prefix_beam_search(utt_np, beam=16, token_min_logprob=-5.0, beam_prune_logprob=prune)[0].tokens
        ours_ms = median_ms(lambda p=prune: prefix_beam_search(utt_np, beam=16, token_min_logprob=-5.0,
                                                               beam_prune_logprob=p), args.repeats)
        row = {"same_as_greedy": ours_best == greedy}
        if pyctc is not None:
            logits = utt.numpy()
            theirs = pyctc.decode_beams(logits, beam_width=16, beam_prune_logp=-prune, token_min_logp=-5.0)  # type: ignore
            theirs_ms = median_ms(lambda p=prune, lg=logits: pyctc.decode_beams(  # type: ignore[attr-defined]
                lg, beam_width=16, beam_prune_logp=-p, token_min_logp=-5.0), args.repeats)
            same = theirs[0][0] == "".join(LABELS[i] for i in ours_best)
            add("compare", kind, "pyctcdecode", 16, pruning, theirs_ms)
            row.update(pyctcdecode_ms=round(theirs_ms, 3), speedup_vs_pyctcdecode=round(theirs_ms / ours_ms, 2),
                       same_best_path_as_pyctcdecode=same)
        add("compare", kind, "ours", 16, pruning, ours_ms, **row)
    for beam in (16, 64):
        fl = flashlight_decoder(vocab, beam)
        if fl is None:
            missing.append("flashlight-text")
            break
        batch1 = utt.unsqueeze(0).contiguous()
        best = fl.decode(batch1)[0][0].tokens  # type: ignore[attr-defined]
        ms = median_ms(lambda d=fl, b1=batch1: d.decode(b1), args.repeats)  # type: ignore[attr-defined]
        add("compare", kind, "flashlight (torchaudio)", beam, "threshold 25", ms, same_as_greedy=best == greedy)

    result = {"rows": rows, "config": benchlib.config(args), "missing": missing,
              "torch_threads": torch.get_num_threads()}
    benchlib.emit(result, args.json)
    table = []
    for r in rows:
        notes = ", ".join(f"{k}={v}" for k, v in r.items() if k not in (
            "section", "input", "method", "beam", "pruning", "ms_per_utt", "rtf"))
        table.append((r["section"], r["input"], r["method"], "-" if r["beam"] is None else r["beam"], r["pruning"],
                      r["ms_per_utt"], r["rtf"], notes))
    benchlib.print_table(table, [("section", "<8"), ("input", "<8"), ("method", "<29"), ("beam", ">4"),
                                 ("pruning", "<22"), ("ms/utt", ">9.2f"), ("RTF", ">8.4f"), ("notes", "", "  ")])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
