"""Decoding speed of the exported files: the ONNX file in ONNX Runtime vs the TorchScript file (and the experiment).

One 10 s, 16 kHz WAV file decoded whole (read, features, network, greedy search: ``Recognizer.transcribe``, what
``lstm-asr decode --model FILE`` runs per file) by three recognisers of the same weights, a 3x250 BLSTM (123
inputs: 40 mel + energy with deltas, 3 frames stacked at a 30 ms rate, as the README's demo model) with 62 outputs:

* ``experiment``: the checkpoint (eager PyTorch, batched model);
* ``torchscript``: ``lstm-asr export`` (waveform in, the scripted front end and network inside);
* ``onnx``: ``lstm-asr export --format onnx`` (the project's front end, the network in ONNX Runtime).

Each round decodes the file once with each, interleaved (:func:`benchlib.interleaved_rounds`); the figures are
medians over rounds, ms per file and the real-time factor, with whether the transcripts agree and the largest
log-prob difference from the experiment. ``--sherpa`` adds ``lstm-asr export --format sherpa-onnx`` decoded by the
sherpa-onnx package (its own fbank and CTC greedy search; the model trained with ``use_energy: false``, which
sherpa-onnx's front end needs, so that row's network reads 40 x 3 features).

Run: ``.venv/bin/python bench/bench_onnx.py [--threads 2] [--repeats 9] [--sherpa]``.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import benchlib
import torch
from streaming_models import write_speech_like_wav

from lstm_asr.export.onnx_export import export_onnx
from lstm_asr.export.torchscript import export_torchscript
from lstm_asr.recognition.recognizer import Recognizer

SECONDS = 10.0


def write_experiment(folder: Path, use_energy: bool = True) -> Path:
    from lstm_asr.data.features import FeatureConfig
    from lstm_asr.nn.model import BLSTMCTC, ModelConfig

    feats = FeatureConfig(use_energy=use_energy)
    tokens = ["<blank>", *(f"p{i}" for i in range(61))]
    model = BLSTMCTC(ModelConfig(input_dim=feats.dim, num_classes=len(tokens), hidden=250, layers=3,
                                 stack_frames=3, subsample=3)).eval()
    with torch.no_grad():
        model.normalizer.mean.fill_(8.0)
        model.normalizer.inv_std.fill_(0.25)
    folder.mkdir(parents=True, exist_ok=True)
    benchlib.save_model(model, feats.to_dict(), tokens, folder / "best.pt")
    return folder


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=9)
    ap.add_argument("--sherpa", action="store_true", help="also time the sherpa-onnx export in sherpa-onnx")
    args = ap.parse_args()
    benchlib.start(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench_onnx_"))
    wav = write_speech_like_wav(tmp / "utt.wav", seconds=SECONDS, seed=1)
    exp = write_experiment(tmp / "exp")
    recs = {"experiment": Recognizer.load(exp),
            "torchscript": Recognizer.load(export_torchscript(exp, tmp / "model.pt")),
            "onnx": Recognizer.load(export_onnx(exp, tmp / "model.onnx"))}
    steps = {name: (lambda r=r: benchlib.timed(lambda: r.transcribe(wav))) for name, r in recs.items()}
    if args.sherpa:
        from lstm_asr.export.sherpa_export import export_sherpa, sherpa_recognizer, sherpa_transcribe

        sherpa_dir = export_sherpa(write_experiment(tmp / "exp_noenergy", use_energy=False), tmp / "sherpa")
        sherpa = sherpa_recognizer(sherpa_dir, threads=args.threads)
        steps["sherpa-onnx"] = lambda: benchlib.timed(lambda: sherpa_transcribe(sherpa, wav))
    times = benchlib.interleaved_rounds(steps, args.repeats)
    from data_prep.audio import load_audio

    wave = load_audio(wav)
    with torch.inference_mode():
        ref_lp = recs["experiment"].log_probs(wave)
        ref_text = recs["experiment"].transcribe(wav).tokens
        checks = {n: {"max_abs_diff": float((r.log_probs(wave) - ref_lp).abs().max()),
                      "same_tokens": r.transcribe(wav).tokens == ref_text} for n, r in recs.items()}
    rows, result = [], {"config": benchlib.config(args), "seconds_of_audio": SECONDS, "runtimes": {}}
    for name, ts in times.items():
        ms = 1000 * statistics.median(ts)
        entry = {"median_ms": round(ms, 1), "rtf": round(ms / 1000 / SECONDS, 4), **checks.get(name, {})}
        result["runtimes"][name] = entry
        check = (f"same tokens={entry['same_tokens']} max|diff|={entry['max_abs_diff']:.1e}" if name in checks
                 else "its own fbank (no energy)")
        rows.append((name, ms, ms / 1000 / SECONDS, check))
    benchlib.emit(result, args.json)
    benchlib.print_table(rows, [("runtime", "<12"), ("ms/file", ">9.1f"), ("RTF", ">8.4f"), ("check", "", "  ")])


if __name__ == "__main__":
    main()
