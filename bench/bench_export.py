"""Exported (TorchScript) model vs the experiment's eager pipeline: same outputs, and what the export costs.

For a 10 s waveform at 16 kHz and a 3x250 BLSTM with 29 outputs (characters), medians over repeats, ms per
utterance:

* ``fbank``: features only: torchaudio's Kaldi fbank + deltas (:func:`lstm_asr.data.features.compute_features`) vs the
  scripted restatement inside the export (:class:`lstm_asr.decoding.export.ScriptableFbank`), and whether they are
  equal.
* ``end_to_end``: waveform -> log-probs: the experiment's path (``Recognizer.log_probs``: features, then the
  batched BLSTM) vs the exported TorchScript module, and the largest absolute difference of the log-probs.

Prints a JSON object and a table. Run: ``.venv/bin/python bench/bench_export.py [--threads 2] [--repeats 7]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import torch

from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.decoding.export import ExportedModel, ScriptableFbank
from lstm_asr.decoding.recognizer import Recognizer
from lstm_asr.nn.model import BLSTMCTC, ModelConfig


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (TorchScript optimises on the first calls)
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = FeatureConfig()
    wave = torch.randn(160000) * 0.1
    model = BLSTMCTC(ModelConfig(input_dim=cfg.dim, num_classes=29, hidden=250, layers=3)).eval()
    tokens = ["|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"]
    rec = Recognizer(model, cfg, ["<blank>", *tokens], "librispeech", "chars")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fbank = torch.jit.script(ScriptableFbank(cfg))
        exported = torch.jit.script(ExportedModel(model, cfg, rec.tokens, "chars", "librispeech")).eval()
    with torch.inference_mode():
        same_feats = torch.equal(fbank(wave), compute_features(wave, cfg))
        diff = (exported(wave) - rec.log_probs(wave)).abs().max().item()
        res = {
            "threads": args.threads, "seconds_of_audio": 10.0,
            "fbank": {"torchaudio_ms": median_ms(lambda: compute_features(wave, cfg), args.repeats),
                      "scripted_ms": median_ms(lambda: fbank(wave), args.repeats), "equal": same_feats},
            "end_to_end": {"experiment_ms": median_ms(lambda: rec.log_probs(wave), args.repeats),
                           "exported_ms": median_ms(lambda: exported(wave), args.repeats),
                           "max_abs_diff": diff},
        }
    print(json.dumps(res))
    print(f"{'stage':<12} {'eager ms':>10} {'exported ms':>12}  check")
    print(f"{'fbank':<12} {res['fbank']['torchaudio_ms']:>10.1f} {res['fbank']['scripted_ms']:>12.1f}  "
          f"equal={same_feats}")
    print(f"{'end_to_end':<12} {res['end_to_end']['experiment_ms']:>10.1f} {res['end_to_end']['exported_ms']:>12.1f}"
          f"  max|diff|={diff:.2e}")


if __name__ == "__main__":
    main()
