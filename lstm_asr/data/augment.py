"""Waveform augmentation for training: speed perturbation, additive noise, reverberation, telephone band, gain.

The standard recipe for speaker and channel robustness, applied to each training utterance before its features
are computed (``lstm_asr/data/wave_batches.py``), in the order a signal meets them: the talker (speed), the room
(reverberation), the microphone (additive noise), the channel (telephone band) and the level (gain).

- Speed perturbation (Ko et al. 2015, Kaldi's ``sox speed``): resampling, so pitch and tempo change together; a
  factor f makes the utterance 1/f as long, and every label time t becomes t/f (:func:`scaled_time`).
- Additive noise at an SNR drawn per utterance: a recording from ``noise_dir`` (random excerpt, looped when too
  short) or coloured noise with power spectrum 1/f^beta (beta 0 white, 1 pink, 2 brown).
- Reverberation: a room impulse response from ``rir_dir``, or from a bank of shoebox rooms simulated with
  pyroomacoustics' image-source method (random sizes, RT60s and positions; generated once per settings and cached
  beside the features). The output is aligned on the direct path, so label times do not move.
- Telephone band: 8 kHz resampling (nothing above 4 kHz) and a 300 Hz high-pass; gain in dB, clipped to [-1, 1].

torchaudio's own functions do the signal processing (``speed``, ``fftconvolve``, ``add_noise``, ``resample``,
``highpass_biquad``); pyroomacoustics simulates the rooms. Every random draw comes from a generator seeded by
(seed, epoch, utterance), so the augmented audio of an utterance does not depend on batch order or on where a
run was resumed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from lstm_asr.atomic_file import write_atomically
from lstm_asr.errors import LstmAsrError, reporting_write_errors

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".sph", ".nist")


@dataclass(frozen=True)
class AugmentConfig:
    """The recipe's ``augment`` section as plain values (see lstm_asr/recipe.py: AugmentSection)."""

    speed: tuple[float, ...] = (1.0,)
    noise_prob: float = 0.0
    noise_snr: tuple[float, float] = (10.0, 30.0)
    noise_dir: str = ""
    noise_color: tuple[float, float] = (0.0, 2.0)
    reverb_prob: float = 0.0
    rir_dir: str = ""
    rir_count: int = 48
    rir_rt60: tuple[float, float] = (0.2, 0.6)
    telephone_prob: float = 0.0
    gain_prob: float = 0.0
    gain_db: tuple[float, float] = (-10.0, 6.0)

    @classmethod
    def from_section(cls, section: object) -> AugmentConfig:
        """From a recipe's ``AugmentSection`` (lists become tuples, so the config is hashable and comparable)."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in asdict(section).items()}  # type: ignore
        return cls(**values)

    @property
    def active(self) -> bool:
        return (any(f != 1.0 for f in self.speed) or self.noise_prob > 0 or self.reverb_prob > 0
                or self.telephone_prob > 0 or self.gain_prob > 0)


def scaled_time(t: float | np.ndarray, factor: float) -> float | np.ndarray:
    """Where a time (seconds or samples) of the original lands after speed perturbation by ``factor``."""
    return t / factor


def speed_perturb(wave: torch.Tensor, rate: int, factor: float) -> torch.Tensor:
    """Kaldi-style speed perturbation: the waveform played ``factor`` times faster (pitch and tempo together),
    by resampling from ``rate * factor`` to ``rate``; the result has ``len / factor`` samples."""
    if factor == 1.0:
        return wave
    out, _ = AF.speed(wave, rate, factor)
    return out


def fft_length(n: int) -> int:
    """The power of two at or above ``n``: FFTs of arbitrary lengths (large prime factors) are many times slower."""
    return 1 << max(0, (n - 1).bit_length())


def coloured_noise(n: int, beta: float, rng: np.random.Generator) -> torch.Tensor:
    """``n`` samples of Gaussian noise with power spectrum 1/f^beta (0 white, 1 pink, 2 brown), unit RMS.

    Shaped in the frequency domain (one rfft of white noise), the way torch-audiomentations' AddColoredNoise does it.
    """
    m = fft_length(n)
    spectrum = torch.fft.rfft(torch.from_numpy(rng.standard_normal(m).astype(np.float32)))
    freqs = torch.linspace(1.0, m / 2 + 1, spectrum.numel())  # bin index, 1-based: no division by zero at DC
    noise = torch.fft.irfft(spectrum / freqs.pow(beta / 2), n=m)[:n]
    return noise / noise.pow(2).mean().sqrt().clamp_min(1e-12)


def telephone(wave: torch.Tensor, rate: int) -> torch.Tensor:
    """The telephone band: through 8 kHz (nothing above 4 kHz survives) and a 300 Hz high-pass."""
    narrow = AF.resample(AF.resample(wave, rate, 8000), 8000, rate)[: wave.numel()]
    return AF.highpass_biquad(narrow, rate, 300.0)


def reverberate(wave: torch.Tensor, rir: torch.Tensor) -> torch.Tensor:
    """Convolve with a room impulse response, aligned on its direct path (its peak) so nothing shifts in time,
    cut to the input's length and scaled back to the input's RMS level."""
    peak = int(rir.abs().argmax())
    # torchaudio's fftconvolve transforms at the exact output length; a power of two is several times faster.
    m = fft_length(wave.numel() + rir.numel() - 1)
    wet = torch.fft.irfft(torch.fft.rfft(wave, n=m) * torch.fft.rfft(rir, n=m), n=m)[peak : peak + wave.numel()]
    return wet * (wave.pow(2).mean().sqrt() / wet.pow(2).mean().sqrt().clamp_min(1e-12))


def _read_folder(folder: str, key: str, rate: int) -> list[torch.Tensor]:
    """Every audio file of ``folder`` (recursively) as a 1-D tensor at ``rate``; one-line errors naming the recipe
    key and the file for a missing or empty folder and for an unreadable or silent file."""
    from data_prep.audio import load_audio  # data_prep reads every format the corpora use (SPHERE too)

    root = Path(folder)
    if not root.is_dir():
        raise LstmAsrError(f"augment.{key}: {root}: folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise LstmAsrError(f"augment.{key}: {root}: holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    out = []
    for path in files:
        try:
            wave = load_audio(path, rate)
        except LstmAsrError as exc:
            raise LstmAsrError(f"augment.{key}: {exc}") from None
        if wave.numel() == 0 or not bool(wave.abs().max() > 0):
            raise LstmAsrError(f"augment.{key}: {path}: silent or empty audio")
        out.append(wave)
    return out


def simulate_rirs(count: int, rt60: tuple[float, float], rate: int, seed: int) -> list[torch.Tensor]:
    """``count`` room impulse responses of random shoebox rooms (pyroomacoustics' image-source method).

    Rooms of 3-10 x 3-8 x 2.4-4 m, RT60 drawn from ``rt60`` (wall absorption by Sabine's formula), source and
    microphone at random positions at least 0.5 m from the walls. Deterministic for a seed.
    """
    try:
        import pyroomacoustics as pra
    except ImportError:
        raise LstmAsrError("augment.reverb_prob needs pyroomacoustics to simulate rooms: pip install "
                           "'lstm-asr[augment]' (or give augment.rir_dir, a folder of impulse responses)") from None
    rng = np.random.default_rng([seed, 7211])
    rirs = []
    for _ in range(count):
        dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        absorption, max_order = pra.inverse_sabine(float(rng.uniform(*rt60)), dims)
        room = pra.ShoeBox(dims, fs=rate, materials=pra.Material(absorption), max_order=max_order)
        room.add_source(rng.uniform(0.5, dims - 0.5))
        room.add_microphone(rng.uniform(0.5, dims - 0.5))
        room.compute_rir()
        rir = np.asarray(room.rir[0][0], dtype=np.float32)
        rirs.append(torch.from_numpy(rir / np.abs(rir).max()))
    return rirs


def load_rir_bank(cfg: AugmentConfig, rate: int, cache_dir: Path | None, seed: int = 0) -> list[torch.Tensor]:
    """The impulse responses reverberation draws from: ``rir_dir``'s files, or simulated rooms (cached in
    ``cache_dir`` as an .npz named by the settings, so a resumed or repeated run does not simulate them again)."""
    if cfg.rir_dir:
        return _read_folder(cfg.rir_dir, "rir_dir", rate)
    settings = {"count": cfg.rir_count, "rt60": list(cfg.rir_rt60), "rate": rate, "seed": seed, "v": 1}
    name = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_dir / f"rirs_{name}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as z:
                return [torch.from_numpy(z[f"r{i}"]) for i in range(cfg.rir_count)]
        except (OSError, ValueError, KeyError):
            pass  # damaged: simulate again
    rirs = simulate_rirs(cfg.rir_count, cfg.rir_rt60, rate, seed)
    if cache is not None:
        buf = io.BytesIO()
        np.savez(buf, **{f"r{i}": r.numpy() for i, r in enumerate(rirs)})
        with reporting_write_errors(cache, "the simulated room impulse responses"):
            write_atomically(cache, lambda f: f.write(buf.getvalue()))
    return rirs


class Augmenter:
    """Applies the configured augmentations to one utterance at a time; draws are seeded per utterance.

    ``noises``/``rirs`` are loaded when the augmenter is built, so a bad folder is reported before training starts.
    """

    def __init__(self, cfg: AugmentConfig, rate: int = 16000, cache_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.rate = rate
        self.noises = _read_folder(cfg.noise_dir, "noise_dir", rate) if cfg.noise_prob > 0 and cfg.noise_dir else []
        self.rirs = load_rir_bank(cfg, rate, cache_dir) if cfg.reverb_prob > 0 else []

    def draw_speed(self, rng: np.random.Generator) -> float:
        """The speed factor for an utterance (drawn first, so the caller can check CTC feasibility early)."""
        return float(self.cfg.speed[int(rng.integers(len(self.cfg.speed)))])

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator, factor: float) -> torch.Tensor:
        """The augmented waveform: speed ``factor`` (from :meth:`draw_speed`), then the random effects."""
        c = self.cfg
        # Every draw happens whether or not its effect is used, so one effect's settings never shift another's.
        u = rng.random(4)
        snr = rng.uniform(*c.noise_snr)
        beta = rng.uniform(*c.noise_color)
        pick_noise, pick_rir = rng.integers(1 << 30), rng.integers(1 << 30)
        gain = rng.uniform(*c.gain_db)
        noise_seed = int(rng.integers(1 << 62))
        x = speed_perturb(wave, self.rate, factor)
        if u[0] < c.reverb_prob:
            x = reverberate(x, self.rirs[pick_rir % len(self.rirs)])
        if u[1] < c.noise_prob:
            x = AF.add_noise(x, self._noise(x.numel(), pick_noise, beta, noise_seed), torch.tensor(snr))
        if u[2] < c.telephone_prob:
            x = telephone(x, self.rate)
        if u[3] < c.gain_prob:
            x = (x * 10 ** (gain / 20)).clamp(-1.0, 1.0)
        return x.to(torch.float32).contiguous()

    def _noise(self, n: int, pick: int, beta: float, seed: int) -> torch.Tensor:
        rng = np.random.default_rng(seed)
        if not self.noises:
            return coloured_noise(n, beta, rng)
        rec = self.noises[pick % len(self.noises)]
        reps = math.ceil(n / rec.numel())
        looped = rec.repeat(reps + 1) if reps > 0 else rec
        start = int(rng.integers(0, rec.numel()))
        return looped[start : start + n]
