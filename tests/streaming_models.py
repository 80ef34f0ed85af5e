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
