"""Streaming decoding speed: sherpa-onnx's ``OnlineRecognizer`` on ``lstm-asr export --format sherpa-onnx``'s
``online/`` folder against lstm-asr's own streaming pipeline (``lstm-asr stream``) and whole-file decoding.

One 10 s, 16 kHz generated WAV, fed in 0.1 s blocks as a live application would, through models of the same weights:
random 3x250 networks with 62 outputs, 40 mel bins without energy (sherpa-onnx's fbank has none) with deltas, 3
frames stacked at a 30 ms rate; a unidirectional LSTM (42-frame sherpa-onnx calls) and a latency-controlled BLSTM
(42-frame chunks, 21 frames of look-ahead). Rounds are interleaved (:func:`benchlib.interleaved_rounds`); figures
are medians, ms per file and the real-time factor, with whether sherpa-onnx's tokens equal the whole-file greedy
decode's over the frames it decodes (it never decodes a stream's last call-length of frames: docs/export.md).

Run: ``.venv/bin/python bench/bench_sherpa_online.py [--threads 1] [--repeats 7]`` (needs the ``[sherpa]`` extra).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import benchlib
import soundfile as sf
import torch
from streaming_models import write_speech_like_wav

from lstm_asr.data.features import FeatureConfig
from lstm_asr.export.sherpa_folder import export_sherpa_folder
from lstm_asr.export.sherpa_online import online_recognizer, online_transcribe
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer

SECONDS = 10.0
BLOCK = 1600  # 0.1 s at 16 kHz
MODELS = {"unidirectional 3x250": {"bidirectional": False},
          "latency-controlled 3x250 (42 + 21)": {"chunk_frames": 42, "right_context": 21}}


def write_experiment(folder: Path, options: dict) -> Path:
    """A random CTC experiment (best.pt) of the benchmark's shape."""
    feats = FeatureConfig(use_energy=False)
    tokens = ["<blank>", *(f"p{i}" for i in range(61))]
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=feats.dim, num_classes=len(tokens), hidden=250, layers=3,
                                 stack_frames=3, subsample=3, **options)).eval()
    folder.mkdir(parents=True, exist_ok=True)
    benchlib.save_model(model, feats.to_dict(), tokens, folder / "best.pt")
    return folder


def measure(label: str, options: dict, tmp: Path, wav: Path, threads: int, repeats: int) -> dict:
    """Export one model, decode the file with the three decoders in interleaved rounds; the figures and checks."""
    audio, rate = sf.read(str(wav), dtype="float32")
    exp = write_experiment(tmp / "exp", options)
    out = export_sherpa_folder(exp, tmp / "sherpa", chunk_frames=0 if options.get("chunk_frames") else 42)
    sherpa = online_recognizer(out / "online", threads=threads)
    rec = Recognizer.load(exp)
    streaming = StreamingRecognizer(rec)

    def ours_stream() -> None:
        stream = streaming.open()
        for i in range(0, len(audio), BLOCK):
            stream.feed(audio[i:i + BLOCK])
        stream.finish()

    steps = {"sherpa-onnx online": lambda: benchlib.timed(lambda: online_transcribe(sherpa, audio, rate, block=BLOCK)),
             "lstm-asr stream": lambda: benchlib.timed(ours_stream),
             "lstm-asr decode (whole file)": lambda: benchlib.timed(lambda: rec.transcribe(wav))}
    times = benchlib.interleaved_rounds(steps, repeats, f"{label}: ")
    # sherpa-onnx gives each token with a leading space (its word-start mark turned into text): compare symbols.
    got = [t.strip() for t in online_transcribe(sherpa, audio, rate, block=BLOCK).tokens]
    whole = list(rec.transcribe(wav).tokens)
    entry = {"same_tokens_as_decoded": whole[:len(got)] == got, "sherpa_tokens": len(got),
             "whole_file_tokens": len(whole), "runtimes": {}}
    for name, ts in times.items():
        ms = 1000 * statistics.median(ts)
        entry["runtimes"][name] = {"median_ms": round(ms, 1), "rtf": round(ms / 1000 / SECONDS, 4)}
    return entry


def main() -> None:
    ap = benchlib.parser(__doc__, threads=1, repeats=7)
    args = ap.parse_args()
    benchlib.start(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_sherpa_online_"))
    wav = write_speech_like_wav(tmp / "utt.wav", seconds=SECONDS, seed=1)
    result, rows = {"config": benchlib.config(args), "seconds_of_audio": SECONDS, "models": {}}, []
    for k, (label, options) in enumerate(MODELS.items()):
        entry = measure(label, options, tmp / str(k), wav, args.threads, args.repeats)
        result["models"][label] = entry
        rows += [(label, name, r["median_ms"], r["rtf"]) for name, r in entry["runtimes"].items()]
    benchlib.emit(result, args.json)
    benchlib.print_table(rows, [("model", "<36"), ("decoder", "<28"), ("ms/file", ">9.1f"), ("RTF", ">8.4f")])


if __name__ == "__main__":
    main()
