"""Streaming figures on the generated corpus: error rate against look-ahead, latency from the end of a spoken phone to
its appearance, the compute cost of streaming against whole-utterance decoding, and int8 against float32.

Subcommands (each prints a JSON object and a table):

* ``per EXP... [--stream NC:NR ...]``: core-test PER of each experiment decoded whole (for a latency-controlled
  model this *is* its streaming output: tests/test_streaming.py) and, with ``--stream``, streamed with chunk NC and
  look-ahead NR input frames (for a model trained on whole utterances: how much streaming costs it). Greedy.
* ``latency EXP [--stream NC:NR] [--files N]``: stream the first core-test recording of N speakers at (simulated)
  real time in 20 ms blocks: block ``b`` arrives when its audio has been spoken, is processed as soon as the
  previous block is done, and a token appears when the block that emits it is done (measured compute time). Each
  hypothesis token matched (Levenshtein alignment) to a reference phone of the ``.PHN`` file gives one latency:
  appearance time minus the phone's end. Also: compute seconds of streaming / of whole-utterance decoding.
* ``int8 EXP [--files N]``: real-time factor (whole-file decoding, one thread) and core-test PER of the float32
  model and of its dynamic int8 quantization.

Run: ``/work/bin/cpu-run -n 2 .venv/bin/python bench/bench_streaming.py latency exp/NAME --threads 1``.
"""

from __future__ import annotations

import time
from pathlib import Path

import benchlib
import numpy as np
import torch

from data_prep.audio import load_audio
from data_prep.corpora import score_units_for
from lstm_asr.data.prep import load_splits
from lstm_asr.decoding.ctc_decode import greedy_decode
from lstm_asr.nn.streaming import StreamingNetwork
from lstm_asr.recipe import load_recipe
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings
from lstm_asr.scoring.evaluate import score_split
from lstm_asr.scoring.levenshtein import align


def _split(exp: Path, which: str = "test"):
    recipe = load_recipe(exp / "recipe.yaml")
    name = {"dev": recipe.corpus.dev_split, "test": recipe.corpus.test_split}[which]
    return recipe, load_splits(recipe, show_progress=False)[name]


def _stream_spec(text: str) -> tuple[int, int]:
    nc, nr = text.split(":")
    return int(nc), int(nr)


@torch.inference_mode()
def streamed_ids(model, split, chunk: int, right: int) -> list[list[int]]:
    """Greedy label ids of every utterance streamed through ``model`` with the given chunking (the whole
    utterance fed at once with ``final``: the same chunk-by-chunk computation as feeding it piece by piece)."""
    net = StreamingNetwork(model, chunk, right)
    out = []
    for i in range(len(split)):
        feats, lengths, _, _ = split.batch(np.array([i]))
        lp, _ = net.step(feats[0, : int(lengths[0])], net.initial_state(), True)
        out.append(list(greedy_decode(lp[None], torch.tensor([lp.shape[0]]))[0].tokens))
    return out


def per(args) -> dict:
    rows = {}
    for exp in map(Path, args.exps):
        recipe, split = _split(exp)
        rec = Recognizer.load(exp)
        units = score_units_for(recipe.corpus.type, recipe.corpus.units)
        c = rec.model.config
        entry = {"chunk_frames": c.chunk_frames, "right_context": c.right_context, "bidirectional": c.bidirectional,
                 "whole": round(100 * score_split(split, decode_split(rec.model, split), rec.tokens,
                                                  units).counts.rate, 2)}
        for spec in args.stream:
            nc, nr = _stream_spec(spec)
            ids = streamed_ids(rec.model, split, nc, nr)
            entry[f"stream {nc}:{nr}"] = round(100 * score_split(split, ids, rec.tokens, units).counts.rate, 2)
        rows[str(exp)] = entry
    return {"core_test_per": rows}


def _phone_ends(wav: Path) -> list[tuple[str, float]]:
    phn = wav.with_suffix(".PHN") if wav.with_suffix(".PHN").exists() else wav.with_suffix(".phn")
    out = []
    for line in phn.read_text().splitlines():
        _, end, label = line.split()
        if label != "q":
            out.append((label, int(end) / 16000))
    return out


def _test_files(exp: Path, n: int) -> list[Path]:
    recipe = load_recipe(exp / "recipe.yaml")
    root = Path(recipe.corpus.path) / "TEST"
    speakers = sorted(p for p in root.glob("DR*/*") if p.is_dir())
    files = []
    for spk in speakers:
        wavs = sorted(spk.glob("S[IX]*.WAV"))
        if wavs:
            files.append(wavs[0])
        if len(files) >= n:
            break
    return files


def latency(args) -> dict:
    exp = Path(args.exps[0])
    rec = Recognizer.load(exp)
    nc, nr = _stream_spec(args.stream[0]) if args.stream else (0, -1)
    streaming = StreamingRecognizer(rec, StreamSettings(nc, nr, endpoint_seconds=0))
    block = int(0.02 * streaming.sample_rate)
    lat, stream_s, whole_s, audio_s = [], 0.0, 0.0, 0.0
    for wav in _test_files(exp, args.files):
        samples = load_audio(wav).numpy()
        audio_s += samples.size / 16000
        t0 = time.perf_counter()
        with torch.inference_mode():
            lp = rec.log_probs(torch.from_numpy(samples))
            greedy_decode(lp[None], torch.tensor([lp.shape[0]]))
        whole_s += time.perf_counter() - t0
        stream = streaming.open()
        appeared: list[float] = []  # appearance time of each hypothesis token, in order
        clock = 0.0
        for i in range(0, samples.size, block):
            arrival = min(i + block, samples.size) / 16000
            start = max(clock, arrival)
            t0 = time.perf_counter()
            stream.feed(samples[i: i + block])
            spent = time.perf_counter() - t0
            stream_s += spent
            clock = start + spent
            n = len(stream.search.partial().tokens)
            appeared += [clock] * (n - len(appeared))
        t0 = time.perf_counter()
        final = stream.finish()
        spent = time.perf_counter() - t0
        stream_s += spent
        appeared += [max(clock, samples.size / 16000) + spent] * (len(final.tokens) - len(appeared))
        ref = _phone_ends(wav)
        ops, _ = align([p for p, _ in ref], final.tokens)
        r = h = 0
        for op, _, _ in ops:  # walk the alignment; a correct token pairs a reference phone with its hypothesis
            if op == "C":
                lat.append(appeared[h] - ref[r][1])
            r += op != "I"
            h += op != "D"
    lat_ms = 1000 * np.asarray(lat)
    return {"experiment": str(exp), "chunk_frames": streaming.chunk_frames, "right_context": streaming.right_context,
            "files": args.files, "audio_seconds": round(audio_s, 1), "matched_phones": int(lat_ms.size),
            "latency_ms": {"median": round(float(np.median(lat_ms)), 1),
                           "p95": round(float(np.percentile(lat_ms, 95)), 1)},
            "compute_seconds": {"streaming": round(stream_s, 3), "whole": round(whole_s, 3),
                                "ratio": round(stream_s / whole_s, 2)},
            "streaming_rtf": round(stream_s / audio_s, 4)}


def int8(args) -> dict:
    exp = Path(args.exps[0])
    recipe, split = _split(exp)
    units = score_units_for(recipe.corpus.type, recipe.corpus.units)
    files = _test_files(exp, args.files)
    waves = [load_audio(f) for f in files]
    seconds = sum(w.numel() for w in waves) / 16000
    out = {}
    for kind in ("", "int8"):
        rec = Recognizer.load(exp).quantize(kind)

        def run(rec: Recognizer = rec) -> None:
            with torch.inference_mode():
                for w in waves:
                    rec.log_probs(w)

        ms = benchlib.median_ms(run, args.repeats)
        ids = decode_split(rec.model, split)
        out[kind or "float32"] = {"rtf": round(ms / 1000 / seconds, 4),
                                  "core_test_per": round(100 * score_split(split, ids, rec.tokens,
                                                                           units).counts.rate, 2)}
    out["speed_up"] = round(out["float32"]["rtf"] / out["int8"]["rtf"], 2)
    return {"experiment": str(exp), "files": len(files), "audio_seconds": round(seconds, 1), **out}


def main() -> None:
    ap = benchlib.parser(__doc__, threads=1, repeats=3)
    ap.add_argument("what", choices=("per", "latency", "int8"))
    ap.add_argument("exps", nargs="+")
    ap.add_argument("--stream", action="append", default=[], help="NC:NR chunk and look-ahead (input frames)")
    ap.add_argument("--files", type=int, default=24, help="test recordings (one per speaker)")
    args = ap.parse_args()
    benchlib.start(args)
    result = {"per": per, "latency": latency, "int8": int8}[args.what](args)
    result["config"] = benchlib.config(args)
    benchlib.emit(result, args.json)


if __name__ == "__main__":
    main()
