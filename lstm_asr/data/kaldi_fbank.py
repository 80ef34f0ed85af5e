"""Kaldi filterbank features for exported and streaming models, in code that TorchScript compiles.

``torchaudio.compliance.kaldi.fbank`` does not compile to TorchScript (it closes over Python floats), so
:class:`ScriptableFbank` restates it in plain tensor ops, with the mel filters and the window computed by
torchaudio when the module is built and stored as buffers; ``tests/test_export.py`` checks it against torchaudio
bit for bit. :class:`StreamingFbank` computes the same features from audio that arrives in pieces
(``lstm-asr decode --stream``, the exported streaming model, the server).
"""

from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.errors import LstmAsrError

_EPS = float(torch.finfo(torch.float32).eps)  # torchaudio's floor before every log


class ScriptableFbank(nn.Module):
    """Kaldi log mel filterbank (+ log energy) and deltas, as :func:`lstm_asr.data.features.compute_features` computes
    them with torchaudio's defaults (povey window, pre-emphasis 0.97, DC removal, raw energy, energy floor 1,
    power spectrum, snip_edges), written so that TorchScript can compile it."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.window_size = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
        self.window_shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
        self.padded = 1 if self.window_size == 0 else 2 ** (self.window_size - 1).bit_length()
        self.use_energy = cfg.use_energy
        self.deltas = cfg.deltas
        self.eps = _EPS
        self.utterance_cmvn = cfg.normalize != "global"  # features.normalize utterance/speaker: as compute_features
        window = torch.hann_window(self.window_size, periodic=False).pow(0.85)  # float32, as torchaudio
        self.register_buffer("window", window)
        mel, _ = kaldi.get_mel_banks(cfg.num_mel_bins, self.padded, float(cfg.sample_rate), 20.0, 0.0, 100.0,
                                     -500.0, 1.0)
        mel = nn.functional.pad(mel.float(), (0, 1))  # the Nyquist bin gets no weight, as in torchaudio
        self.register_buffer("mel_t", mel.T.contiguous())

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        feats = self.with_deltas(self.static(waveform))
        if self.utterance_cmvn:  # the utterance's own statistics, as lstm_asr.data.features.utterance_cmvn
            x = feats.double()
            mean = x.mean(0)
            var = (x * x).mean(0) - mean * mean
            feats = ((x - mean) * var.clamp_min(1e-8).rsqrt()).float()
        return feats

    @torch.jit.export
    def static(self, waveform: torch.Tensor) -> torch.Tensor:
        """Log mel (+ energy) frames of a waveform, without deltas: each frame depends on its own samples only."""
        if waveform.dim() != 1 or waveform.numel() < self.window_size:
            raise ValueError("expected a 1-D waveform at least one frame long")
        frames = (waveform * 32768.0).unfold(0, self.window_size, self.window_shift)
        frames = frames - frames.mean(dim=1, keepdim=True)
        energy = frames.pow(2).sum(1).clamp_min(self.eps).log().clamp_min(0.0)  # log(energy_floor = 1) = 0
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = (frames - 0.97 * previous) * self.window
        frames = nn.functional.pad(frames, (0, self.padded - self.window_size))
        spectrum = torch.fft.rfft(frames).abs().pow(2.0)
        feats = torch.mm(spectrum, self.mel_t).clamp_min(self.eps).log()
        if self.use_energy:
            feats = torch.cat([energy.unsqueeze(1), feats], dim=1)
        return feats

    @torch.jit.export
    def with_deltas(self, feats: torch.Tensor) -> torch.Tensor:
        """Static frames (T, d) -> static + deltas (T, d * (deltas + 1)), edges replicated as torchaudio does."""
        parts = [feats]
        cur = feats.T.unsqueeze(0)
        for _ in range(self.deltas):
            cur = AF.compute_deltas(cur, win_length=5)
            parts.append(cur.squeeze(0).T)
        return torch.cat(parts, dim=1).contiguous()


class StreamingFbank(nn.Module):
    """:class:`ScriptableFbank` on a stream: samples in as they arrive, feature frames out once they are final.

    Kaldi framing (``snip_edges``) makes a frame of every ``window_size`` samples at every ``window_shift``; each
    static frame depends on its own samples only. A frame's deltas read 2 frames each side per order, replicated
    at the edges of the utterance, so a frame is final once ``2 * deltas`` more static frames exist (or the stream
    has ended). The state keeps the samples of the unfinished frame and the static frames the next deltas read;
    the frames given out are those ``compute_features`` gives for the whole recording (to float rounding).
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        if cfg.normalize != "global":
            raise LstmAsrError(f"a model trained with features.normalize: {cfg.normalize} cannot stream: its input "
                               "statistics need the whole utterance (decode whole files, or train with global)")
        self.fbank = ScriptableFbank(cfg)
        self.context = 2 * cfg.deltas
        self.static_dim = cfg.num_mel_bins + int(cfg.use_energy)
        self.dim = cfg.dim

    @torch.jit.export
    def initial_state(self) -> dict[str, torch.Tensor]:
        return {"wav": torch.zeros(0), "static": torch.zeros(0, self.static_dim),
                "first": torch.zeros(1, dtype=torch.long),  # utterance index of static[0]
                "done": torch.zeros(1, dtype=torch.long)}  # feature frames given out so far

    @torch.jit.export
    def step(self, samples: torch.Tensor, state: dict[str, torch.Tensor],
             final: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Feed samples (1-D float in [-1, 1]); returns the feature frames (n, dim) that became final."""
        state = dict(state)
        wav = torch.cat([state["wav"], samples.to(torch.float32)])
        win, shift = self.fbank.window_size, self.fbank.window_shift
        static = state["static"]
        if wav.numel() >= win:
            n = 1 + (wav.numel() - win) // shift
            static = torch.cat([static, self.fbank.static(wav[: (n - 1) * shift + win])], dim=0)
            wav = wav[n * shift:]
        state["wav"] = wav
        first, done = int(state["first"][0]), int(state["done"][0])
        known = first + static.shape[0]
        last = known - 1 if final else known - 1 - self.context  # the last frame whose deltas are final
        out = static.new_zeros((0, self.dim))
        if last >= done:
            feats = self.fbank.with_deltas(static)
            out = feats[done - first: last + 1 - first]
            done = last + 1
        # Keep what the next frames' deltas read: `context` frames before the first frame not yet given out.
        keep_from = max(first, done - self.context)
        state["static"] = static[keep_from - first:]
        state["first"] = torch.tensor([keep_from])
        state["done"] = torch.tensor([done])
        return out, state
