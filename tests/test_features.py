"""Features: Kaldi fbank + energy with deltas (123 dims), framing, and normalisation from training stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi

from lstm_asr.data.features import FeatureConfig, Normalizer, add_deltas, compute_features, fbank
from lstm_asr.errors import LstmAsrError


def _tone(seconds: float = 1.0, sr: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sr)) / sr
    noise = torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    return 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.01 * noise


def test_graves_feature_shape_and_frame_count() -> None:
    cfg = FeatureConfig()
    wav = _tone(1.0)
    feats = compute_features(wav, cfg)
    assert cfg.dim == 123 and feats.shape == (cfg.num_frames(wav.numel()), 123) == (98, 123)
    assert feats.dtype == torch.float32 and torch.isfinite(feats).all()


def test_static_part_is_kaldi_fbank_on_16bit_scale() -> None:
    wav = _tone(0.5)
    ours = fbank(wav, FeatureConfig())
    ref = kaldi.fbank((wav * 32768).unsqueeze(0), num_mel_bins=40, use_energy=True, dither=0.0, energy_floor=1.0)
    torch.testing.assert_close(ours, ref)
    # The 440 Hz tone puts the most energy in a low mel bin, not a high one.
    assert ours[:, 1:41].mean(0).argmax() < 15


def test_deltas_of_a_linear_ramp_are_its_slope() -> None:
    ramp = torch.arange(20, dtype=torch.float32).unsqueeze(1).repeat(1, 3) * 2.0
    out = add_deltas(ramp, 2)
    assert out.shape == (20, 9)
    torch.testing.assert_close(out[5:15, 3:6], torch.full((10, 3), 2.0))  # delta = slope away from the edges
    torch.testing.assert_close(out[5:15, 6:9], torch.zeros(10, 3))  # delta-delta of a line = 0


def test_normalizer_from_stats_gives_zero_mean_unit_variance() -> None:
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.normal(5.0, 3.0, size=(5000, 4))).float()
    total, total_sq = data.double().sum(0), (data.double() ** 2).sum(0)
    norm = Normalizer.from_stats(data.shape[0], total, total_sq)
    out = norm(data)
    torch.testing.assert_close(out.mean(0), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=0)
    assert set(norm.state_dict()) == {"mean", "inv_std"}  # travels in the model's state dict


def test_too_short_audio_is_a_clear_error() -> None:
    with pytest.raises(LstmAsrError, match="too short"):
        compute_features(torch.zeros(100), FeatureConfig())
