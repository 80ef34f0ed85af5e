"""Tests of content-sniffing audio loading, downmixing, resampling and error reporting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from data_prep.audio import load_audio, read_audio
from data_prep.sphere import write_sphere
from lstm_asr.errors import CorpusError


def stereo(n: int, rate: int) -> np.ndarray:
    t = np.arange(n) / rate
    return np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)


@pytest.mark.parametrize(("name", "fmt"), [("s.wav", "WAV"), ("s.flac", "FLAC"), ("S.WAV", "WAV")])
def test_stereo_44k_downmixed_and_resampled(tmp_path: Path, name: str, fmt: str) -> None:
    x = stereo(44100, 44100)
    path = tmp_path / name
    sf.write(path, x, 44100, format=fmt, subtype="PCM_16")
    y, rate = read_audio(path)
    assert rate == 44100 and y.dtype == np.float32 and y.shape == (44100,)
    np.testing.assert_allclose(y, x.mean(axis=1), atol=2e-4)
    wave = load_audio(path)
    assert isinstance(wave, torch.Tensor) and wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(wave.shape[0] - 16000) <= 1
    # Resampling keeps the content: the 440 Hz tone still dominates.
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert abs(np.argmax(spectrum) * 16000 / wave.shape[0] - 440) < 3


def test_sphere_content_sniffed_whatever_the_name(tmp_path: Path) -> None:
    x = (np.arange(1600) % 100 / 100 - 0.5).astype(np.float32)
    path = tmp_path / "u.flac"  # name lies; content decides
    write_sphere(path, x, 16000)
    y, rate = read_audio(path)
    assert rate == 16000
    np.testing.assert_allclose(y, x, atol=1 / 32768)
    assert load_audio(path, 16000).shape == (1600,)


def test_riff_named_upper_wav(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 3200, dtype=np.float32)
    path = tmp_path / "SA1.WAV"
    sf.write(path, x, 16000, format="WAV", subtype="PCM_16")
    assert path.read_bytes()[:4] == b"RIFF"
    y, rate = read_audio(path)
    assert rate == 16000 and y.shape == (3200,)
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_load_audio_no_resample_when_rate_matches(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, 8000).numpy(), x)
    assert abs(load_audio(path, 16000).shape[0] - 16000) <= 1


def riff_bytes(tmp_path: Path, n: int = 1000) -> bytes:
    path = tmp_path / "ok.wav"
    sf.write(path, np.zeros(n, dtype=np.float32), 16000, subtype="PCM_16")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: b"", "empty"),
        (lambda tmp: b"\x00\x01garbage" * 50, "cannot decode"),
        (lambda tmp: riff_bytes(tmp, 0), "no samples"),  # valid WAV of zero frames
        (lambda tmp: riff_bytes(tmp)[:44], "truncated"),  # header only: data chunk content cut off
        (lambda tmp: riff_bytes(tmp)[:-500], "truncated"),
        (lambda tmp: riff_bytes(tmp)[:20], ""),
        (lambda tmp: b"NIST_1A\n   1024\nsample_count -i 99999999\n", ""),
    ],
)
def test_bad_audio_is_corpus_error_naming_file(tmp_path: Path, make, message: str) -> None:
    path = tmp_path / "BAD.WAV"
    path.write_bytes(make(tmp_path))
    with pytest.raises(CorpusError) as info:
        read_audio(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)
    with pytest.raises(CorpusError):
        load_audio(path)


def test_missing_file_is_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="missing.wav"):
        read_audio(tmp_path / "missing.wav")


def test_nan_samples_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(CorpusError, match="NaN"):
        read_audio(path)
