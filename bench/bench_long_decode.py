"""Decoding a long recording: peak memory and speed, windowed (lstm_asr/recognition/long_decode.py) vs the whole file
at once.

Builds a long 16 kHz RIFF WAV (default 10 minutes): the generated demo corpus's utterances one after another when
``data/synth_timit/corpus`` exists, else tone pairs in noise. Decodes it (greedy) with a model: ``--model EXP`` or,
by default, a 3x250 BLSTM (123 inputs, 62 outputs, Graves 2013's shape) with random weights and normalisation
statistics from the recording: memory and time do not depend on what the weights learnt. Each mode runs in a fresh
subprocess, which reports its peak resident memory (``VmHWM`` from /proc/self/status, and ``ru_maxrss``), its
resident memory just before decoding (model loaded, torch imported), the decoding wall time and the real-time
factor. The two transcripts are compared token by token.

Prints a JSON object and a table.
Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/bench_long_decode.py [--minutes 10] [--window 30 --context 3]``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import numpy as np
import soundfile as sf
import torch
from benchlib import ROOT, status_kb

DEMO = ROOT / "data" / "synth_timit" / "corpus"


def build_recording(path: Path, minutes: float, seed: int = 0) -> str:
    """Write ``minutes`` of 16 kHz audio block by block (never the whole recording in memory); say what it is."""
    from data_prep.audio import load_audio

    total = int(minutes * 60 * 16000)
    rng = np.random.default_rng(seed)
    sources = sorted(DEMO.glob("TEST/*/*/*.WAV")) if DEMO.is_dir() else []
    written = 0
    with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as out:
        k = 0
        while written < total:
            if sources:
                block = load_audio(sources[k % len(sources)], 16000).numpy()
            else:  # one second of tone pairs, 100 ms each, in noise
                t = np.arange(1600) / 16000
                f = rng.uniform(150, 4000, size=(10, 2))
                block = np.concatenate([0.3 * np.sin(2 * np.pi * a * t) + 0.2 * np.sin(2 * np.pi * b * t)
                                        for a, b in f]) + rng.normal(0, 0.01, 16000)
            block = np.clip(block[: total - written], -1, 1).astype(np.float32)
            out.write(block)
            written += len(block)
            k += 1
    if sources:
        return f"{minutes:g} min of the generated demo corpus's TEST utterances ({len(sources)} files, cycled)"
    return f"{minutes:g} min of tone pairs in noise"


def random_model(wav: Path, out: Path) -> Path:
    """A 3x250 BLSTM checkpoint with random weights, normalised with the statistics of the recording's start."""
    from data_prep.phones import TRAIN_PHONES
    from lstm_asr.data.features import FeatureConfig, compute_features
    from lstm_asr.data.tokens import TokenSet
    from lstm_asr.nn.model import BLSTMCTC, ModelConfig

    cfg = FeatureConfig()
    tokens = TokenSet(list(TRAIN_PHONES)).symbols
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=cfg.dim, num_classes=len(tokens), hidden=250, layers=3))
    head, _ = sf.read(wav, frames=60 * 16000, dtype="float32")
    feats = compute_features(torch.from_numpy(head), cfg)
    model.normalizer.mean.copy_(feats.mean(0))
    model.normalizer.inv_std.copy_(feats.std(0).clamp_min(1e-4).reciprocal())
    return benchlib.save_model(model, cfg.to_dict(), tokens, out)


def child(mode: str, wav: str, model: str, window: float, context: float) -> None:
    """One decode in this (fresh) process, on the threads ``benchlib.start`` set; prints a JSON line."""
    from lstm_asr.recognition.long_decode import WindowConfig
    from lstm_asr.recognition.recognizer import Recognizer

    rec = Recognizer.load(model)
    n_params = rec.model.num_parameters()
    before = status_kb("VmRSS")
    t0 = time.perf_counter()
    out = rec.transcribe(wav, window=WindowConfig(window, context) if mode == "windowed" else None)
    wall = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "wall_s": wall, "audio_s": out.duration, "rtf": wall / out.duration,
                      "rss_before_decode_mb": before / 1024, "peak_rss_mb": status_kb("VmHWM") / 1024,
                      "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "tokens": out.tokens, "params": n_params}))


def main() -> None:
    ap = benchlib.parser(__doc__.split("\n")[0], threads=1)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--model", type=Path, default=None, help="experiment folder or checkpoint (default: random 3x250)")
    ap.add_argument("--window", type=float, default=30.0, help="window (central part), seconds")
    ap.add_argument("--context", type=float, default=3.0, help="context each side, seconds")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "WAV"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        # Threads are set in the child that decodes; the parent only writes the recording and the random model.
        benchlib.start(args)
        child(args.child[0], args.child[1], str(args.model), args.window, args.context)
        return
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        what = build_recording(wav, args.minutes)
        model = args.model or random_model(wav, Path(tmp) / "model.pt")
        rows = {}
        for mode in ("windowed", "whole"):
            cmd = [sys.executable, __file__, "--child", mode, str(wav), "--model", str(model), "--window",
                   str(args.window), "--context", str(args.context), "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if res.returncode != 0:
                raise SystemExit(f"{mode} decode failed:\n{res.stderr}")
            rows[mode] = json.loads(res.stdout.strip().splitlines()[-1])
    a, b = rows["windowed"].pop("tokens"), rows["whole"].pop("tokens")
    agree = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    result = {"recording": what, "audio_minutes": args.minutes, "window_s": args.window, "context_s": args.context,
              "threads": args.threads, "model": str(args.model or "random 3x250 BLSTM"),
              "params": rows["whole"].pop("params"), "tokens_windowed": len(a), "tokens_whole": len(b),
              "token_agreement": round(agree, 5), "identical": a == b,
              "modes": {k: {m: round(v, 4) if isinstance(v, float) else v for m, v in r.items() if m != "params"}
                        for k, r in rows.items()}}
    benchlib.emit(result, args.json)
    print()
    print(f"{what}; {result['model']} ({result['params']:,} weights), greedy, {args.threads} thread(s)")
    labels = {"windowed": f"windowed {args.window:g} s + {args.context:g} s context", "whole": "whole file"}
    benchlib.print_table([(labels[mode], r["peak_rss_mb"], r["rss_before_decode_mb"],
                           r["peak_rss_mb"] - r["rss_before_decode_mb"], r["wall_s"], r["rtf"])
                          for mode, r in rows.items()],
                         [("mode", ""), ("peak RSS (MB)", ">.0f"), ("RSS before decoding (MB)", ">.0f"),
                          ("peak - before (MB)", ">.0f"), ("wall (s)", ">.1f"), ("RTF", ">.4f")], markdown=True)
    print(f"transcripts: {len(a)} vs {len(b)} tokens, identical: {a == b}, agreement {agree:.5f}")


if __name__ == "__main__":
    main()
