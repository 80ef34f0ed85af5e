"""Windowed decoding of long recordings (lstm_asr/decoding/long_decode.py): the stitched log-probs equal the whole-file
ones, the network never sees more than a window with its contexts, and the CLI switches to it by itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import run_cli

from data_prep.audio import load_audio
from data_prep.sphere import read_sphere
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.decoding.ctc_decode import greedy_decode
from lstm_asr.decoding.long_decode import (
    AudioFile,
    ResampledAudio,
    WindowConfig,
    is_long,
    plan_windows,
    windowed_log_probs,
)
from lstm_asr.decoding.recognizer import Recognizer
from lstm_asr.nn.model import BLSTMCTC, ModelConfig

WINDOW = WindowConfig(window_seconds=2.0, context_seconds=1.0)  # windowed above 4 s


def long_recording(corpus: Path, path: Path, seconds: float = 20.0, rate: int = 16000, channels: int = 1) -> Path:
    """The corpus's utterances one after another (repeated) until ``seconds`` long, written as RIFF WAV."""
    parts = [read_sphere(w)[0] for w in sorted(corpus.glob("*/*/*/S[IX]*.WAV"))]
    audio = np.concatenate(parts * int(np.ceil(seconds * 16000 / sum(map(len, parts)))))[: int(seconds * 16000)]
    if rate != 16000:
        audio = AF.resample(torch.from_numpy(audio), 16000, rate).numpy()
    if channels > 1:  # the channels differ a little, so a wrong downmix would show
        audio = np.stack([audio * (1 + 0.1 * c) for c in range(channels)], axis=1) / 1.1
    sf.write(path, audio, rate, subtype="PCM_16")
    return path


class CountingForward:
    """Wraps a model's forward to record the number of input frames of every call."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model, self.inner, self.frames = model, model.forward, []
        model.forward = self

    def __call__(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.frames.append(feats.shape[1])
        return self.inner(feats, lengths)


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2)])
def test_windowed_log_probs_equal_whole_file(trained_exp: Path, tiny_corpus: Path, tmp_path: Path, rate: int,
                                             channels: int, monkeypatch: pytest.MonkeyPatch) -> None:
    wav = long_recording(tiny_corpus, tmp_path / "long.wav", rate=rate, channels=channels)
    rec = Recognizer.load(trained_exp)
    whole = rec.log_probs(load_audio(wav, 16000))
    assert is_long(wav, rec.features, 1, WINDOW) and not is_long(wav, rec.features, 1, WindowConfig(30, 3))

    reads: list[int] = []
    inner_read = AudioFile.read
    monkeypatch.setattr(AudioFile, "read", lambda self, a, b: reads.append(b - a) or inner_read(self, a, b))
    counter = CountingForward(rec.model)
    windowed, seconds = windowed_log_probs(rec.model, rec.features, wav, WINDOW)
    central, context = WINDOW.frames(rec.features.frame_shift_ms, 1)
    assert (central, context) == (200, 100)
    # Bounded: the network never runs on more than a window and its two contexts, and the file is never read
    # whole (a window's samples, a few frames for the deltas and the resampler's margin).
    assert len(counter.frames) == 10 and max(counter.frames) == central + 2 * context
    assert max(reads) < (central + 2 * context + 10) * 0.01 * rate + 4000  # vs 20 s x rate for the file
    assert abs(seconds - 20.0) < 1e-3

    assert windowed.shape == whole.shape
    # With 1 s of context the BLSTM's outputs no longer depend on the cut (without context they differ by up to
    # 0.99 in probability at the cuts, with 1 s by ~1e-4 for this model).
    assert (windowed.exp() - whole.exp()).abs().max().item() < 1e-3
    assert (windowed - whole).abs().max().item() < 2e-2
    best = [greedy_decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0].tokens for lp in (whole, windowed)]
    assert best[0] == best[1] and len(best[0]) > 50


def test_window_audio_and_features_equal_the_whole_files(tiny_corpus: Path, tmp_path: Path) -> None:
    """Window-wise resampling and featurisation reproduce the whole file's samples and features."""
    from lstm_asr.decoding.long_decode import _features

    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=6.0, rate=22050, channels=2)
    cfg = FeatureConfig()
    whole = load_audio(wav, 16000)
    feats = compute_features(whole, cfg)
    with AudioFile(wav) as audio:
        res = ResampledAudio(audio, 16000)
        assert res.num_samples == whole.numel()
        for a, b in [(0, 500), (12345, 40000), (whole.numel() - 3000, whole.numel())]:
            torch.testing.assert_close(res.read(a, b), whole[a:b], atol=1e-5, rtol=0)
        for a, b in [(0, 100), (137, 420), (feats.shape[0] - 150, feats.shape[0])]:
            torch.testing.assert_close(_features(res, cfg, a, b, feats.shape[0]), feats[a:b], atol=2e-3, rtol=1e-4)


def test_frame_stacking_and_pyramid_models_stitch_at_the_reduced_rate(tiny_corpus: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=62, hidden=16, layers=2, stack_frames=3, subsample=3,
                                 pyramid=1)).eval()  # 6 input frames per output frame
    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=15.0)
    cfg = FeatureConfig()
    feats = compute_features(load_audio(wav, 16000), cfg)
    model.normalizer.mean.copy_(feats.mean(0))  # normalised inputs: the untrained cells are not saturated
    model.normalizer.inv_std.copy_(feats.std(0).clamp_min(1e-3).reciprocal())
    with torch.inference_mode():
        whole = model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]
    window = WindowConfig(window_seconds=1.0, context_seconds=1.0)
    central, context = window.frames(cfg.frame_shift_ms, 6)
    assert central % 6 == 0 and context % 6 == 0
    windows = plan_windows(feats.shape[0], central, context, 6)
    assert windows[-1].keep_stop == whole.shape[0] and len(windows) == 15
    windowed, _ = windowed_log_probs(model, cfg, wav, window)
    assert windowed.shape == whole.shape
    torch.testing.assert_close(windowed, whole, atol=2e-3, rtol=0)


def test_decode_cli_windows_long_recordings_with_the_same_transcript(trained_exp: Path, tiny_corpus: Path,
                                                                   tmp_path: Path) -> None:
    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=12.0)
    outs = []
    for window in ("2", "0"):  # windowed (6 windows), then whole
        res = run_cli("decode", "--model", str(trained_exp), "--json", "--threads", "1", "--window-seconds", window,
                      "--context-seconds", "1", str(wav))
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    assert outs[0]["text"] == outs[1]["text"] and len(outs[0]["text"].split()) > 30
    assert [t["start"] for t in outs[0]["tokens"]] == [t["start"] for t in outs[1]["tokens"]]
    assert outs[0]["duration"] == outs[1]["duration"] == 12.0
