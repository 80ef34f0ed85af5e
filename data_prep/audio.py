"""Loading audio files of any common format as mono float32.

The format is decided by the file's content, not its name: TIMIT's ``.WAV`` files are NIST SPHERE, but some
distributions ship RIFF WAV under the same name. SPHERE goes through our own validating reader
(:mod:`data_prep.sphere`); everything else goes through libsndfile (soundfile). Every failure on a bad file
is raised as :class:`~lstm_asr.errors.CorpusError` naming the file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from data_prep.sphere import MAGIC as SPHERE_MAGIC
from data_prep.sphere import read_sphere
from lstm_asr.errors import CorpusError

# RIFF chunk sizes that streaming writers leave as placeholders; they say nothing about truncation.
_UNKNOWN_RIFF_SIZES = (0, 0xFFFFFFFF)


def _check_riff_complete(path: Path, head: bytes, file_size: int) -> None:
    """Raise CorpusError when a RIFF/WAVE file's ``data`` chunk runs past the end of the file.

    libsndfile silently reads whatever part of a truncated WAV is present; a training corpus with cut-off
    utterances (whose transcriptions still cover the full length) is better reported than used.
    """
    if not (head.startswith(b"RIFF") and head[8:12] == b"WAVE"):
        return
    pos = 12
    with open(path, "rb") as f:
        while pos + 8 <= file_size:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if size not in _UNKNOWN_RIFF_SIZES and pos + 8 + size > file_size:
                    raise CorpusError(
                        path,
                        f"truncated WAV: data chunk announces {size} bytes, {file_size - pos - 8} present",
                    )
                return
            pos += 8 + size + (size & 1)  # chunks are word aligned


def read_audio(path: str | Path, channels: Sequence[int] | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 samples and its sample rate.

    The format is sniffed from the content: ``NIST_1A`` -> SPHERE reader, anything else -> soundfile (RIFF
    WAV, FLAC, OGG, ...). Multi-channel audio is downmixed by averaging, over ``channels`` (0-based) when given
    (one channel: that channel alone). Empty, corrupt or truncated files, and a channel the file lacks, raise
    CorpusError.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            head = f.read(16)
    except OSError as e:
        raise CorpusError(path, f"cannot read audio: {e.strerror or e}") from None
    if not head:
        raise CorpusError(path, "empty audio file")
    if head.startswith(SPHERE_MAGIC):
        samples, rate = read_sphere(path)
    else:
        _check_riff_complete(path, head, file_size)
        try:
            samples, rate = sf.read(path, dtype="float32", always_2d=True)
        except Exception as e:  # libsndfile raises several types (LibsndfileError, RuntimeError, TypeError)
            raise CorpusError(path, f"cannot decode audio: {e}") from None
    samples = mono(samples, channels, path)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if samples.size == 0:
        raise CorpusError(path, "audio file contains no samples")
    if not np.isfinite(samples).all():
        raise CorpusError(path, "audio contains NaN or infinite samples")
    return samples, int(rate)


def read_audio_bytes(data: bytes, what: str | Path, channels: Sequence[int] | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file held in memory (a pipe's output, a Hugging Face dataset's audio bytes) like
    :func:`read_audio`; ``what`` names it in errors. libsndfile sniffs the format (WAV, FLAC, OGG, SPHERE PCM)."""
    import io

    if not data:
        raise CorpusError(what, "empty audio")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types
        raise CorpusError(what, f"cannot decode audio: {e}") from None
    samples = np.ascontiguousarray(mono(samples, channels, what), dtype=np.float32)
    if samples.size == 0:
        raise CorpusError(what, "audio contains no samples")
    if not np.isfinite(samples).all():
        raise CorpusError(what, "audio contains NaN or infinite samples")
    return samples, int(rate)


def mono(samples: np.ndarray, channels: Sequence[int] | None, what: str | Path) -> np.ndarray:
    """One channel of (frames,) or (frames, channels) samples: the mean of ``channels`` (None: of all)."""
    if samples.ndim == 1:
        samples = samples[:, None]
    if channels is not None:
        bad = [c for c in channels if not 0 <= c < samples.shape[1]]
        if bad or not channels:
            raise CorpusError(what, f"no channel {bad[0] if bad else '(none chosen)'} (the audio has "
                              f"{samples.shape[1]})")
        samples = samples[:, list(channels)]
    return samples[:, 0] if samples.shape[1] == 1 else samples.mean(axis=1, dtype=np.float32)


def resampled(samples: np.ndarray, rate: int, sample_rate: int) -> torch.Tensor:
    """Mono samples at ``rate`` as a 1-D float32 tensor at ``sample_rate`` Hz (torchaudio's sinc resampler)."""
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if rate != sample_rate:
        wave = AF.resample(wave, rate, sample_rate)
    return wave.contiguous()


def load_audio(path: str | Path, sample_rate: int = 16000) -> torch.Tensor:
    """Load ``path`` as a 1-D float32 tensor at ``sample_rate`` Hz, resampling when the file differs."""
    return resampled(*read_audio(path), sample_rate)
