"""Exported (TorchScript) model vs the experiment's eager pipeline: same outputs, and what the export costs.

For a 10 s waveform at 16 kHz and a 3x250 BLSTM with 29 outputs (characters), medians over repeats, ms per
utterance:

* ``fbank``: features only: torchaudio's Kaldi fbank + deltas (:func:`lstm_asr.data.features.compute_features`) vs the
  scripted restatement inside the export (:class:`lstm_asr.export.torchscript.ScriptableFbank`), and whether they are
  equal.
* ``end_to_end``: waveform -> log-probs: the experiment's path (``Recognizer.log_probs``: features, then the
  batched BLSTM) vs the exported TorchScript module, and the largest absolute difference of the log-probs.

Prints a JSON object and a table. Run: ``.venv/bin/python bench/bench_export.py [--threads 2] [--repeats 7]``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import benchlib
import torch

from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.export.torchscript import ExportedModel, ScriptableFbank
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.recognition.recognizer import Recognizer


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median ms per call after two untimed calls: TorchScript optimises on its first calls."""
    return benchlib.median_ms(fn, repeats, warmup=2)


def main() -> None:
    args = benchlib.parser(__doc__, threads=2, repeats=7).parse_args()
    benchlib.start(args)
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
    benchlib.emit(res, args.json, indent=None)  # one line, as this script has always printed it
    benchlib.print_table([("fbank", res["fbank"]["torchaudio_ms"], res["fbank"]["scripted_ms"], f"equal={same_feats}"),
                          ("end_to_end", res["end_to_end"]["experiment_ms"], res["end_to_end"]["exported_ms"],
                           f"max|diff|={diff:.2e}")],
                         [("stage", "<12"), ("eager ms", ">10.1f"), ("exported ms", ">12.1f"), ("check", "", "  ")])


if __name__ == "__main__":
    main()
