"""Untrained models of every kind written as lstm-asr checkpoints, and test audio, for the streaming and export
tests (no training: these tests compare two code paths on the same weights)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from lstm_asr.data.features import FeatureConfig
from lstm_asr.nn.checkpoint import save_checkpoint
from lstm_asr.nn.model import BLSTMCTC, ModelConfig

TOKENS = ["<blank>", "aa", "b", "d", "iy", "s", "h#"]


def make_model(seed: int = 0, sharpen: float = 30.0, **options) -> BLSTMCTC:
    """A small random model with ``options`` (ModelConfig fields). Its output layer is scaled by ``sharpen`` so its
    best tokens win by wide margins: two code paths that agree to float rounding then give the same transcript."""
    torch.manual_seed(seed)
    cfg = FeatureConfig()
    config = ModelConfig(input_dim=cfg.dim, num_classes=len(TOKENS), hidden=options.pop("hidden", 12),
                         layers=options.pop("layers", 2), **options)
    model = BLSTMCTC(config).eval()
    with torch.no_grad():
        model.normalizer.mean.fill_(8.0)  # roughly centre the log mel features of the test audio
        model.normalizer.inv_std.fill_(0.25)
        model.output.weight.mul_(sharpen)
    return model


def write_checkpoint(model: BLSTMCTC, path: Path) -> Path:
    """Save ``model`` as an experiment's ``best.pt`` (speech features, TIMIT-style phone tokens)."""
    path.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"model_config": asdict(model.config), "features": FeatureConfig().to_dict(),
                     "tokens": TOKENS, "corpus_type": "timit", "recipe": {}, "state_dict": model.state_dict()},
                    path / "best.pt")
    return path


def write_speech_like_wav(path: Path, seconds: float = 2.0, seed: int = 0, gap: tuple[float, float] | None = None
                          ) -> Path:
    """Tones that change every 80-150 ms over noise (like tests/fake_timit.py), 16-bit 16 kHz mono; with
    ``gap`` = (start, end) seconds of near-silence in the middle."""
    rng = np.random.default_rng(seed)
    n = int(16000 * seconds)
    audio = rng.normal(0.0, 0.003, size=n)
    pos = 1600
    while pos < n - 1600:
        length = int(rng.integers(1280, 2400))
        t = np.arange(min(length, n - 1600 - pos)) / 16000
        f1, f2 = rng.uniform(200, 1200), rng.uniform(1200, 3500)
        audio[pos: pos + t.size] += 0.3 * np.sin(2 * np.pi * f1 * t) + 0.2 * np.sin(2 * np.pi * f2 * t)
        pos += length
    if gap is not None:
        audio[int(gap[0] * 16000): int(gap[1] * 16000)] = rng.normal(0.0, 0.001, size=int((gap[1] - gap[0]) * 16000))
    sf.write(path, audio.astype(np.float32), 16000, subtype="PCM_16")
    return path


TONES = {"aa": 500.0, "iy": 3000.0}  # the tone model's tokens and the tones that make them


def write_tone_wav(path: Path, pattern: tuple[str, ...] = ("aa", "iy", "aa"), tone_seconds: float = 0.4,
                   gap_seconds: float = 0.3) -> Path:
    """Tone bursts (``TONES``) separated by quiet gaps, 16-bit 16 kHz mono, with quiet at both ends."""
    rate = 16000
    rng = np.random.default_rng(0)
    parts = [rng.normal(0.0, 0.001, int(gap_seconds * rate))]
    for token in pattern:
        t = np.arange(int(tone_seconds * rate)) / rate
        parts.append(0.3 * np.sin(2 * np.pi * TONES[token] * t) + rng.normal(0.0, 0.001, t.size))
        parts.append(rng.normal(0.0, 0.001, int(gap_seconds * rate)))
    sf.write(path, np.concatenate(parts).astype(np.float32), rate, subtype="PCM_16")
    return path


def make_tone_model(**options) -> BLSTMCTC:
    """A hand-set latency-controlled model that writes ``aa`` for a 500 Hz burst and ``iy`` for a 3 kHz one, by
    wide margins: its transcript of :func:`write_tone_wav` audio cannot change with resampling, a few samples of
    offset or float rounding, so two recording paths (a file, a browser's microphone) must give the same one.
    Each layer passes two units through (input and output gates open, forget gate shut, g = tanh(w x))."""
    from lstm_asr.data.features import compute_features

    options = {"chunk_frames": 12, "right_context": 6, **options}
    model = make_model(hidden=2, layers=2, sharpen=1.0, **options)
    cfg = FeatureConfig()
    quiet = compute_features(torch.from_numpy(np.random.default_rng(1).normal(0, 0.001, 8000).astype(np.float32)),
                             cfg).mean(0)
    bins = []
    for freq in TONES.values():
        t = torch.arange(8000) / 16000
        loud = compute_features((0.3 * torch.sin(2 * torch.pi * freq * t)).float(), cfg).mean(0)
        bins.append(int(torch.argmax(loud[1:41] - quiet[1:41])) + 1)  # static mel bins follow the energy
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.normalizer.mean.zero_()
        model.normalizer.inv_std.zero_()
        for b in bins:  # tone -> about +3, quiet -> about -3
            lo, hi = float(quiet[b]), float(loud_level(b, bins, quiet, cfg))
            model.normalizer.mean[b] = (lo + hi) / 2
            model.normalizer.inv_std[b] = 6.0 / (hi - lo)
        reads = [bins, [0, 1]]  # layer 0 reads the two mel bins; layer 1 the forward outputs of layer 0
        for layer, inputs in zip(model.layers, reads, strict=True):
            for rnn in (layer.fwd, layer.bwd):
                h = rnn.hidden_size
                rnn.bias_ih_l0[:h] = 10.0  # input gate open
                rnn.bias_ih_l0[h: 2 * h] = -10.0  # forget gate shut
                rnn.bias_ih_l0[3 * h:] = 10.0  # output gate open
                for unit, col in enumerate(inputs):
                    rnn.weight_ih_l0[2 * h + unit, col] = 2.0
        w = model.output.weight  # reads the forward units of the top layer: blank | aa | iy ...
        aa, iy = 1 + TOKENS[1:].index("aa"), 1 + TOKENS[1:].index("iy")
        w[aa, 0], w[aa, 1], w[iy, 0], w[iy, 1] = 20.0, -20.0, -20.0, 20.0
        model.output.bias[aa] = model.output.bias[iy] = -10.0
        model.output.bias[[k for k in range(len(TOKENS)) if k not in (0, aa, iy)]] = -50.0
    return model


def loud_level(b: int, bins: list[int], quiet: torch.Tensor, cfg: FeatureConfig) -> float:
    """The feature ``b`` takes on its own tone (the tone of ``bins.index(b)``)."""
    from lstm_asr.data.features import compute_features

    freq = list(TONES.values())[bins.index(b)]
    t = torch.arange(8000) / 16000
    return float(compute_features((0.3 * torch.sin(2 * torch.pi * freq * t)).float(), cfg).mean(0)[b])
