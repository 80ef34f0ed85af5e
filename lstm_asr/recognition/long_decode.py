"""Decoding long recordings in bounded memory: windowed BLSTM inference with overlap.

A bidirectional network reads the whole input before it emits anything, and a whole-file forward pass holds every
layer's activations for every frame (tens of kB per 10 ms frame for a 3x250 model), besides the waveform and its
features. For a long recording (a 10-minute talk, an hour of meeting) the work is cut into windows instead:

* the frames are split into consecutive *central* parts of ``window_seconds``; each window is the central part with
  ``context_seconds`` more on each side (less at the ends of the file);
* each window's audio is read from the file on its own (soundfile seeks; SPHERE files, short by nature, are read
  whole), resampled when the file's rate differs from the model's, and featurised with a few frames more on each
  side so that the deltas, too, equal the whole-file features;
* the network runs on the window alone (at most window + 2 x context frames), normalised with the statistics stored
  in the model, the same for every window;
* the log-probabilities of the central parts are written one after another into one sequence, which has exactly the
  frames a whole-file pass gives. Inside a central part the BLSTM has seen ``context_seconds`` of real audio in both
  directions, enough for its state to no longer depend on where the window was cut (``tests/test_long_decode.py``
  compares the two).

The search (greedy, prefix beam search, LM) then runs once over the stitched sequence. Stitching posteriors rather
than decoding each window and merging transcripts is what keeps the result the whole-file result: at a cut, a CTC
decoder's output depends on frames on both sides (a token whose spike falls in an overlap would be emitted twice or
lost; a token repeated across the cut is merged or not depending on the blank between), and a beam search or LM
would restart its context at every window. What still grows with the length is the stitched sequence itself, one
float per class per output frame (62 classes: 248 bytes per 10 ms, 89 MB per hour), a small fraction of what a
whole-file pass holds per frame.

Window starts and lengths are whole multiples of the model's frame-rate reduction (frame stacking, subsampling,
pyramid), so each window begins on an output-frame boundary and its outputs line up with the whole-file outputs.
When resampling, each window's audio is cut where the polyphase resampler's phase is zero, so the resampled window
holds the very samples the whole resampled file would.

Files no longer than one window with its two contexts are decoded whole, exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from data_prep.sphere import MAGIC as SPHERE_MAGIC
from data_prep.sphere import read_sphere_header
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.errors import CorpusError, LstmAsrError


@dataclass(frozen=True)
class WindowConfig:
    """How long recordings are cut: central parts of ``window_seconds`` with ``context_seconds`` each side.

    ``window_seconds <= 0`` turns windowing off (every file is decoded whole).
    """

    window_seconds: float = 30.0
    context_seconds: float = 3.0

    def __post_init__(self) -> None:
        if self.context_seconds < 0:
            raise LstmAsrError(f"context: {self.context_seconds:g} s must be >= 0")

    @property
    def enabled(self) -> bool:
        return self.window_seconds > 0

    def frames(self, frame_shift_ms: float, reduction: int) -> tuple[int, int]:
        """(central, context) window sizes in input frames, whole multiples of the model's frame ``reduction``."""
        per_s = 1000.0 / frame_shift_ms
        central = max(1, round(self.window_seconds * per_s / reduction)) * reduction
        context = math.ceil(self.context_seconds * per_s / reduction) * reduction
        return central, context


DEFAULT_WINDOW = WindowConfig()


@dataclass(frozen=True)
class Window:
    """Input frames ``[start, stop)`` go through the network; output frames of ``[keep_start, keep_stop)`` (input
    frames ``[central_start, central_stop)``) are kept. ``keep_*`` count output frames of the whole file."""

    start: int
    stop: int
    central_start: int
    central_stop: int
    keep_start: int
    keep_stop: int


def plan_windows(total_frames: int, central: int, context: int, reduction: int) -> list[Window]:
    """Cut ``total_frames`` input frames into windows (``central`` and ``context`` multiples of ``reduction``)."""
    if central % reduction or context % reduction:
        raise ValueError("window sizes must be multiples of the frame reduction")
    out = []
    for s in range(0, total_frames, central):
        e = min(s + central, total_frames)
        out.append(Window(max(0, s - context), min(total_frames, e + context), s, e, s // reduction,
                          -(-e // reduction)))
    return out


class AudioFile:
    """Random access to a recording's mono float32 samples at its own rate, reading only what is asked for.

    soundfile formats are read block by block; SPHERE (TIMIT-style short utterances, possibly compressed) is read
    whole by the validating reader. Problems are CorpusErrors naming the file, as in :mod:`data_prep.audio`.
    """

    def __init__(self, path: str | Path) -> None:
        from data_prep.audio import _check_riff_complete, read_audio

        self.path = Path(path)
        self._samples: np.ndarray | None = None
        self._file: sf.SoundFile | None = None
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(0)
                head = f.read(16)
        except OSError as e:
            raise CorpusError(self.path, f"cannot read audio: {e.strerror or e}") from None
        if not head:
            raise CorpusError(self.path, "empty audio file")
        if head.startswith(SPHERE_MAGIC):
            self._samples, self.rate = read_audio(self.path)
            self.frames = len(self._samples)
            return
        _check_riff_complete(self.path, head, size)
        try:
            self._file = sf.SoundFile(self.path)
        except Exception as e:  # libsndfile raises several types
            raise CorpusError(self.path, f"cannot decode audio: {e}") from None
        self.rate, self.frames = int(self._file.samplerate), int(self._file.frames)
        if self.frames <= 0:
            raise CorpusError(self.path, "audio file contains no samples")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (clipped to the file), mono float32."""
        start, stop = max(0, start), min(self.frames, stop)
        if self._samples is not None:
            return self._samples[start:stop]
        assert self._file is not None
        try:
            self._file.seek(start)
            data = self._file.read(max(0, stop - start), dtype="float32", always_2d=True)
        except Exception as e:
            raise CorpusError(self.path, f"cannot decode audio: {e}") from None
        data = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        if not np.isfinite(data).all():
            raise CorpusError(self.path, "audio contains NaN or infinite samples")
        return np.ascontiguousarray(data, dtype=np.float32)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> AudioFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ResampledAudio:
    """Samples of an :class:`AudioFile` at ``rate``, any range of them, equal to those of the whole file resampled
    with ``torchaudio.functional.resample`` (a range is read from a cut where the resampler's phase is zero, with a
    margin longer than its filter)."""

    def __init__(self, audio: AudioFile, rate: int) -> None:
        self.audio, self.rate = audio, rate
        g = math.gcd(audio.rate, rate)
        self.src_unit, self.dst_unit = audio.rate // g, rate // g  # src_unit source samples = dst_unit samples
        self.num_samples = -(-audio.frames * self.dst_unit // self.src_unit)  # what resample() returns
        width = math.ceil(6 * self.src_unit / (0.99 * min(self.src_unit, self.dst_unit)))  # torchaudio's kernel
        self.margin_units = -(-(width + self.src_unit) // self.src_unit) + 1

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples ``[start, stop)`` at the target rate (``stop`` at most ``num_samples``)."""
        if self.src_unit == self.dst_unit:
            return torch.from_numpy(self.audio.read(start, stop))
        first = max(0, start // self.dst_unit - self.margin_units)  # in resampler blocks
        last = -(-stop // self.dst_unit) + self.margin_units
        src = torch.from_numpy(self.audio.read(first * self.src_unit, last * self.src_unit))
        out = AF.resample(src, self.audio.rate, self.rate)
        offset = start - first * self.dst_unit
        return out[offset:offset + (stop - start)]


def _features(audio: ResampledAudio, cfg: FeatureConfig, start: int, stop: int, total: int) -> torch.Tensor:
    """Features of frames ``[start, stop)`` of the whole file, computed from just enough audio around them."""
    shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
    win = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    pad = 2 * cfg.deltas  # deltas look +-2 frames per order: with these frames either side they match exactly
    a, b = max(0, start - pad), min(total, stop + pad)
    wave = audio.read(a * shift, (b - 1) * shift + win)
    return compute_features(wave, cfg)[start - a:stop - a]


@torch.inference_mode()
def windowed_log_probs(model, features: FeatureConfig, path: str | Path, window: WindowConfig,
                       audio: AudioFile | None = None) -> tuple[torch.Tensor, float]:
    """Log-probabilities (T', C) of a whole recording computed window by window, and its duration in seconds.

    ``model`` is a :class:`~lstm_asr.nn.model.BLSTMCTC` (features in, log-probs out, ``output_lengths``).
    """
    own = audio is None
    audio = audio or AudioFile(path)
    try:
        resampled = ResampledAudio(audio, features.sample_rate)
        total = features.num_frames(resampled.num_samples)
        if total == 0:
            raise CorpusError(path, f"audio too short for one {features.frame_length_ms:g} ms frame")
        reduction = model.frame_reduction
        central, context = window.frames(features.frame_shift_ms, reduction)
        out_frames = int(model.output_lengths(torch.tensor([total]))[0])
        out: torch.Tensor | None = None
        for w in plan_windows(total, central, context, reduction):
            feats = _features(resampled, features, w.start, w.stop, total)
            lp = model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]
            if out is None:  # allocated once: no second copy of the sequence when it is complete
                out = lp.new_empty(out_frames, lp.shape[-1])
            first = (w.central_start - w.start) // reduction
            out[w.keep_start:w.keep_stop] = lp[first:first + w.keep_stop - w.keep_start]
        assert out is not None
        return out, audio.frames / audio.rate
    finally:
        if own:
            audio.close()


def audio_seconds(path: str | Path) -> float | None:
    """Duration of an audio file from its header (no samples read), or None when the header cannot say."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if head.startswith(SPHERE_MAGIC):
            h = read_sphere_header(path)
            return h.sample_count / h.sample_rate
        info = sf.info(str(path))
        return info.frames / info.samplerate if info.frames > 0 and info.samplerate > 0 else None
    except Exception:  # unreadable: the whole-file reader reports it, with the usual message
        return None


def is_long(path: str | Path, features: FeatureConfig, reduction: int, window: WindowConfig | None) -> bool:
    """Whether ``path`` is longer than one window with its two contexts (and so is decoded windowed)."""
    if window is None or not window.enabled:
        return False
    seconds = audio_seconds(path)
    if seconds is None:
        return False
    central, context = window.frames(features.frame_shift_ms, reduction)
    return seconds * 1000.0 / features.frame_shift_ms > central + 2 * context

