"""Acoustic features: Kaldi-compatible log mel filterbank + energy, with deltas (Graves et al. 2013).

Pure functions first (as in ``torchaudio.functional``), then small stateful pieces: :class:`FeatureConfig` (the
settings, stored with every model) and :class:`Normalizer` (mean/variance from training statistics, stored with
the model so decoding normalises exactly as training did).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

from lstm_asr.errors import LstmAsrError


@dataclass(frozen=True)
class FeatureConfig:
    """Feature settings. Defaults give Graves 2013's 123 dims: (40 mel + energy) x (static, delta, delta-delta)."""

    sample_rate: int = 16000
    num_mel_bins: int = 40
    use_energy: bool = True
    deltas: int = 2  # 0: static only, 1: + delta, 2: + delta-delta
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0  # Kaldi dithers by default; 0 makes features deterministic, which prep relies on
    # The recipe's features.normalize. "utterance" and "speaker": compute_features (used on single files, with no
    # speaker known) normalises by the utterance's own statistics; prep stores raw features (:meth:`raw`) and the
    # prepared splits are normalised as they are read (lstm_asr/data/split_views.py).
    normalize: str = "global"

    @property
    def dim(self) -> int:
        """Feature dimension per frame."""
        return (self.num_mel_bins + int(self.use_energy)) * (self.deltas + 1)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["normalize"] == "global":  # so stores and checkpoints from before the key are exactly as they were
            del d["normalize"]
        return d

    def raw(self) -> FeatureConfig:
        """The same features without input normalisation: what prep stores."""
        return replace(self, normalize="global")

    def num_frames(self, num_samples: int) -> int:
        """Frames Kaldi's framing (snip_edges=True) makes from ``num_samples`` samples."""
        win = int(self.sample_rate * self.frame_length_ms / 1000)
        shift = int(self.sample_rate * self.frame_shift_ms / 1000)
        return 0 if num_samples < win else 1 + (num_samples - win) // shift


def fbank(waveform: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Log mel filterbank (+ log energy) of a 1-D waveform in [-1, 1]: (frames, num_mel_bins + use_energy).

    torchaudio's Kaldi compliance module expects Kaldi's 16-bit sample scale, so the waveform is scaled by 2^15.
    """
    if waveform.dim() != 1:
        raise ValueError("fbank expects a 1-D waveform")
    min_len = int(config.sample_rate * config.frame_length_ms / 1000)
    if waveform.numel() < min_len:
        raise LstmAsrError(f"audio too short for one {config.frame_length_ms:g} ms frame ({waveform.numel()} samples)")
    return kaldi.fbank(
        waveform.unsqueeze(0) * 32768.0,
        num_mel_bins=config.num_mel_bins,
        use_energy=config.use_energy,
        frame_length=config.frame_length_ms,
        frame_shift=config.frame_shift_ms,
        sample_frequency=config.sample_rate,
        dither=config.dither,
        energy_floor=1.0,
    )


def add_deltas(feats: torch.Tensor, order: int) -> torch.Tensor:
    """Append ``order`` orders of deltas (Kaldi/HTK regression over +-2 frames) to (frames, dim) features."""
    parts = [feats]
    cur = feats.T.unsqueeze(0)
    for _ in range(order):
        cur = AF.compute_deltas(cur, win_length=5)
        parts.append(cur.squeeze(0).T)
    return torch.cat(parts, dim=1)


def compute_features(waveform: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Features of a 1-D waveform at ``config.sample_rate``: (frames, config.dim) float32; un-normalised, except
    with ``config.normalize`` utterance or speaker: then by the utterance's own mean and variance (a single file
    has no speaker, so per-speaker normalisation falls back to the utterance's statistics)."""
    feats = add_deltas(fbank(waveform, config), config.deltas).contiguous()
    return utterance_cmvn(feats) if config.normalize != "global" else feats


VARIANCE_FLOOR = 1e-8


def utterance_cmvn(feats: torch.Tensor) -> torch.Tensor:
    """(T, D) features with zero mean and unit variance per dimension over their own frames (float64 statistics;
    a constant dimension's variance is floored at :data:`VARIANCE_FLOOR`, as the model's :class:`Normalizer` does)."""
    x = feats.double()
    mean = x.mean(0)
    var = (x * x).mean(0) - mean * mean
    return ((x - mean) * var.clamp_min(VARIANCE_FLOOR).rsqrt()).to(feats.dtype)


class Normalizer(torch.nn.Module):
    """Per-dimension mean/variance normalisation with statistics from the training set.

    Kept as buffers so they travel inside the model's state dict and the exported model.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("inv_std", torch.ones(dim))

    @classmethod
    def from_stats(cls, count: int, total: torch.Tensor, total_sq: torch.Tensor) -> Normalizer:
        """Build from accumulated frame count, sum and sum of squares (float64 for accuracy over many frames)."""
        norm = cls(total.numel())
        mean = total / count
        var = (total_sq / count - mean**2).clamp_min(1e-8)
        norm.mean.copy_(mean.float())
        norm.inv_std.copy_(var.rsqrt().float())
        return norm

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return (feats - self.mean) * self.inv_std
