"""Windowed decoding of long recordings (lstm_asr/recognition/long_decode.py): the stitched log-probs equal the
whole-file ones, the network never sees more than a window with its contexts, and the CLI switches to it by
itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from conftest import run_cli, write_recipe

from data_prep.audio import load_audio
from data_prep.sphere import read_sphere
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.recognition.long_decode import (
    AudioFile,
    ResampledAudio,
    WindowConfig,
    is_long,
    plan_windows,
    windowed_log_probs,
)

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


# Output classes of fading_memory_model that only its "edge" units drive: best on the first frame (CUT) and on the
# last frame (END) of whatever sequence the network runs on, worst everywhere else. Blank (0) is best elsewhere.
CUT, END = 1, 2


def fading_memory_model(feats: torch.Tensor, num_classes: int = 10, hidden: int = 8, **config: int) -> BLSTMCTC:
    """A BLSTM-CTC whose outputs provably depend on nearby frames only, with edge detectors on top.

    Every nn.LSTM (both directions, ``fwd`` and ``bwd``, of every layer) gets no recurrent weights and a forget gate
    of sigmoid(0) = 1/2 (nn.LSTM's gates are ordered i, f, g, o): its cell state is c_t = sum_k 2^-k i_{t-k} g_{t-k}
    with |i g| < 1, so frames more than n steps back (forwards; ahead, backwards) move c_t, and h_t, by less than
    2^(1-n), whatever the other weights are. The other input weights stay random: the outputs follow the audio.

    The last unit of each direction of the top layer ignores its input (i = 1/2, g = o = 1): on the n-th frame of a
    sequence its cell state is 1 - 2^-(n+1), so its output is tanh(1/2) on the first frame and at least tanh(3/4) on
    every later one. Class CUT reads the forward one and END the backward one. With M a bound on the logits of the
    other classes but blank (|h| <= 1), blank's logit is M + 1 and CUT's (END's) is M + 2 on the first (last) frame
    and below -M - 2 on every other: the best class is CUT on the first frame of every sequence the network runs on,
    END on its last, blank everywhere else, each by a margin of at least 1 (no near-ties to flip).
    """
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=feats.shape[1], num_classes=num_classes, hidden=hidden, layers=2,
                                 **config)).eval()
    model.normalizer.mean.copy_(feats.mean(0))  # normalised inputs: the gates are not saturated
    model.normalizer.inv_std.copy_(feats.std(0).clamp_min(1e-3).reciprocal())
    h, edge = hidden, hidden - 1
    with torch.no_grad():
        for layer in model.layers:
            for lstm in (layer.fwd, layer.bwd):
                lstm.weight_hh_l0.zero_()
                for p in (lstm.weight_ih_l0, lstm.bias_ih_l0, lstm.bias_hh_l0):
                    p[h : 2 * h] = 0  # forget gate 1/2
        for lstm in (model.layers[-1].fwd, model.layers[-1].bwd):
            lstm.weight_ih_l0[edge::h] = 0
            lstm.bias_hh_l0[edge::h] = 0
            lstm.bias_ih_l0[edge::h] = torch.tensor([0.0, 0.0, 20.0, 20.0])  # i = f = 1/2, g = o = 1
        out = model.output
        out.weight[:, [edge, h + edge]] = 0
        others = [c for c in range(num_classes) if c not in (0, CUT, END)]
        bound = (out.weight[others].abs().sum(1) + out.bias[others].abs()).max()  # M
        out.weight[0], out.bias[0] = 0, bound + 1
        first, second = math.tanh(0.5), math.tanh(0.75)
        gain = 2 * (bound + 2) / (second - first)
        for cls, unit in ((CUT, edge), (END, h + edge)):
            out.weight[cls] = 0
            out.weight[cls, unit] = -gain
            out.bias[cls] = gain * (first + second) / 2  # M + 2 on the first frame, <= -M - 2 on the others
    return model


def frames_where_best(log_probs: torch.Tensor, cls: int) -> list[int]:
    return (log_probs.argmax(-1) == cls).nonzero().flatten().tolist()


@pytest.mark.parametrize(("rate", "channels"), [(16000, 1), (44100, 2)])
def test_windowed_log_probs_equal_whole_file(tiny_corpus: Path, tmp_path: Path, rate: int, channels: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    wav = long_recording(tiny_corpus, tmp_path / "long.wav", rate=rate, channels=channels)
    cfg = FeatureConfig()
    feats = compute_features(load_audio(wav, 16000), cfg)
    model = fading_memory_model(feats)
    with torch.inference_mode():
        whole = model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]
    last = whole.shape[0] - 1
    assert frames_where_best(whole, CUT) == [0] and frames_where_best(whole, END) == [last]
    assert is_long(wav, cfg, 1, WINDOW) and not is_long(wav, cfg, 1, WindowConfig(30, 3))

    reads: list[int] = []
    inner_read = AudioFile.read
    monkeypatch.setattr(AudioFile, "read", lambda self, a, b: reads.append(b - a) or inner_read(self, a, b))
    counter = CountingForward(model)
    windowed, seconds = windowed_log_probs(model, cfg, wav, WINDOW)
    central, context = WINDOW.frames(cfg.frame_shift_ms, 1)
    assert (central, context) == (200, 100)
    # Bounded: the network never runs on more than a window and its two contexts, and the file is never read
    # whole (a window's samples, a few frames for the deltas and the resampler's margin).
    assert len(counter.frames) == 10 and max(counter.frames) == central + 2 * context
    assert max(reads) < (central + 2 * context + 10) * 0.01 * rate + 4000  # vs 20 s x rate for the file
    assert abs(seconds - 20.0) < 1e-3

    assert windowed.shape == whole.shape
    # Every kept frame has 100 frames of real audio on both sides, so the cuts move the first layer's cell states
    # there by less than 2^-99 (fading_memory_model), and the second's by that times its gates' gain and the 100
    # frames: nothing in float32. Windowed equals whole up to rounding.
    torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=0)
    assert frames_where_best(windowed, CUT) == [0] and frames_where_best(windowed, END) == [last]
    # ... and not because the outputs hardly move: every frame's differ from the next one's by far more than that
    # (at least 5e-3 here), so windows read a frame off, or stitched a frame off, would show.
    assert (whole[1:] - whole[:-1]).abs().amax(-1).min() > 1e-4

    # Negative control: without context every window starts and ends cold, and the edge classes show each cut.
    counter.frames.clear()
    bare, _ = windowed_log_probs(model, cfg, wav, WindowConfig(window_seconds=2.0, context_seconds=0.0))
    starts = list(range(0, whole.shape[0], central))
    assert len(counter.frames) == 10 and max(counter.frames) == central
    assert frames_where_best(bare, CUT) == starts
    assert frames_where_best(bare, END) == [s - 1 for s in starts[1:]] + [last]


def test_window_audio_and_features_equal_the_whole_files(tiny_corpus: Path, tmp_path: Path) -> None:
    """Window-wise resampling and featurisation reproduce the whole file's samples and features."""
    from lstm_asr.recognition.long_decode import _features

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
    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=15.0)
    cfg = FeatureConfig()
    feats = compute_features(load_audio(wav, 16000), cfg)
    model = fading_memory_model(feats, num_classes=62, hidden=16, stack_frames=3, subsample=3, pyramid=1)
    assert model.frame_reduction == 6  # 6 input frames per output frame
    with torch.inference_mode():
        whole = model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]
    # 2 s of context: 34 frames of the top layer, which runs at 1/6 of the rate (the bottom one: 68 at 1/3).
    window = WindowConfig(window_seconds=1.0, context_seconds=2.0)
    central, context = window.frames(cfg.frame_shift_ms, 6)
    assert central % 6 == 0 and context % 6 == 0 and context // 6 == 34
    windows = plan_windows(feats.shape[0], central, context, 6)
    assert windows[-1].keep_stop == whole.shape[0] and len(windows) == 15
    windowed, _ = windowed_log_probs(model, cfg, wav, window)
    assert windowed.shape == whole.shape
    torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=0)  # the cuts move states by ~2^-33 x gains
    # Without context the edge classes mark where each window's outputs were put: on output-frame boundaries.
    bare, _ = windowed_log_probs(model, cfg, wav, WindowConfig(window_seconds=1.0, context_seconds=0.0))
    assert frames_where_best(whole, CUT) == frames_where_best(windowed, CUT) == [0]
    assert frames_where_best(bare, CUT) == [w.keep_start for w in windows]
    assert frames_where_best(bare, END) == [w.keep_stop - 1 for w in windows]


def test_decode_cli_windows_long_recordings_with_the_same_transcript(tiny_corpus: Path, tmp_path: Path) -> None:
    from data_prep.phones import TRAIN_PHONES
    from lstm_asr.data.tokens import TokenSet
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.recipe import load_recipe
    from lstm_asr.recognition.recognizer import Recognizer
    from lstm_asr.training.train import model_checkpoint

    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=12.0)
    tokens = TokenSet(list(TRAIN_PHONES)).symbols
    model = fading_memory_model(compute_features(load_audio(wav, 16000), FeatureConfig()), num_classes=len(tokens))
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats"))
    save_checkpoint(model_checkpoint(model, recipe, tokens), tmp_path / "exp" / "best.pt")
    outs = []
    for context in ("1", "0"):  # 6 windows of 2 s, with 1 s of context and without
        res = run_cli("decode", "--model", str(tmp_path / "exp"), "--json", "--threads", "1", "--window-seconds", "2",
                      "--context-seconds", context, str(wav))
        assert res.returncode == 0, res.stderr
        outs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    windowed, bare = outs
    whole = Recognizer.load(tmp_path / "exp").transcribe(wav, window=None).to_dict()  # the file in one pass
    assert windowed["duration"] == whole["duration"] == bare["duration"] == 12.0
    # Blank between the edge classes (fading_memory_model), by a margin of 1: whole, the file is one CUT and one END;
    # windowed with context, the same, and the same score up to rounding (1e-5 per frame, the tolerance above).
    frames = FeatureConfig().num_frames(12 * 16000)
    last = round((frames - 1) * 0.01, 3)
    assert [(t["token"], t["start"]) for t in whole["tokens"]] == [(tokens[CUT], 0.0), (tokens[END], last)]
    assert windowed["tokens"] == whole["tokens"] and windowed["text"] == whole["text"]
    assert windowed["score"] == pytest.approx(whole["score"], abs=frames * 1e-5)
    # Without context each of the 6 windows starts and ends cold: a CUT on its first frame, an END on its last.
    cuts = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    ends = [round(c - 0.01, 3) for c in cuts[1:]] + [last]
    assert [(t["token"], t["start"]) for t in bare["tokens"]] == [
        x for c, e in zip(cuts, ends, strict=True) for x in ((tokens[CUT], c), (tokens[END], e))]
