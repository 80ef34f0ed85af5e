"""Audio that arrives as it is recorded: standard input (raw 16-bit PCM or a WAV stream), a file played at real
time, and the microphone (the optional ``sounddevice`` package). Each source yields ``(samples, arrived)`` blocks:
float32 mono samples in [-1, 1] at the requested rate, and the ``time.monotonic()`` at which they were read.

Problems a user can cause are one-line :class:`~lstm_asr.errors.LstmAsrError` messages that say what to pass
instead: a WAV stream at another rate or channel count, a sample format other than 16-bit PCM, no microphone.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from lstm_asr.errors import LstmAsrError

Block = tuple[np.ndarray, float]


def _what_to_pass(rate: int) -> str:
    return (f"record with `arecord -f S16_LE -r {rate} -c 1`, or convert with `sox IN -t wav -r {rate} -c 1 -b 16 -`"
            f" or `ffmpeg -i IN -f s16le -ar {rate} -ac 1 -`")


class PcmStream:
    """16-bit little-endian PCM from a byte stream (a pipe): raw samples at ``rate``, mono -- or a WAV stream,
    whose header is read and checked (``arecord`` writes one, with a placeholder length).

    After the blocks run out, ``trailing_bytes`` says how many bytes of an incomplete last sample were dropped
    (a pipe that ended mid-sample).
    """

    def __init__(self, stream: BinaryIO, rate: int, name: str = "stdin", block_seconds: float = 0.1) -> None:
        self.stream, self.rate, self.name = stream, rate, name
        self.block_bytes = max(2, int(rate * block_seconds) * 2)
        self.trailing_bytes = 0

    def _read(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end of the stream (a pipe may return less than asked)."""
        parts, got = [], 0
        while got < n:
            chunk = self.stream.read(n - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _wav_header(self, head: bytes) -> None:
        """Read RIFF chunks up to ``data``; refuse anything but 16-bit PCM mono at our rate."""
        if head[8:12] != b"WAVE":
            raise LstmAsrError(f"{self.name}: starts with RIFF but is not a WAV stream")
        fmt = None
        for _ in range(64):  # a WAV header has a handful of chunks; a stream with endless ones is not audio
            chunk = self._read(8)
            if len(chunk) < 8:
                raise LstmAsrError(f"{self.name}: WAV stream ended inside its header")
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                break
            if size > 1 << 20:
                raise LstmAsrError(f"{self.name}: WAV header chunk {cid!r} of {size} bytes is not plausible")
            body = self._read(size + (size & 1))
            if cid == b"fmt ":
                if len(body) < 16:
                    raise LstmAsrError(f"{self.name}: WAV fmt chunk too short")
                fmt = struct.unpack("<HHIIHH", body[:16])
        else:
            raise LstmAsrError(f"{self.name}: no data chunk in the WAV header")
        if fmt is None:
            raise LstmAsrError(f"{self.name}: WAV stream without a fmt chunk")
        tag, channels, rate, _, _, bits = fmt
        if tag not in (1, 0xFFFE) or bits != 16 or channels != 1 or rate != self.rate:
            kind = "PCM" if tag in (1, 0xFFFE) else "float" if tag == 3 else f"format {tag}"
            raise LstmAsrError(f"{self.name}: WAV stream is {bits}-bit {kind}, {channels} channel(s) at {rate} Hz; "
                               f"this model needs 16-bit PCM mono at {self.rate} Hz: {_what_to_pass(self.rate)}")

    def blocks(self) -> Iterator[Block]:
        head = self._read(12)
        pending = b""
        if head.startswith(b"RIFF") and len(head) == 12:
            self._wav_header(head)
        else:
            pending = head
        while True:
            data = pending + self._read(self.block_bytes - len(pending))
            arrived = time.monotonic()
            if not data:
                return
            usable = len(data) // 2 * 2
            if usable:
                yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0, arrived
            pending = data[usable:]
            if len(data) < self.block_bytes:  # the stream ended
                self.trailing_bytes = len(pending)
                return


def file_blocks(path: str | Path, rate: int, realtime: bool = False, block_seconds: float = 0.1) -> Iterator[Block]:
    """A file's samples (resampled to ``rate``, downmixed) in blocks; with ``realtime``, each block is given out
    when it would have been recorded, as if the file were being spoken now."""
    from data_prep.audio import load_audio

    wav = load_audio(path, rate).numpy()
    step = max(1, int(rate * block_seconds))
    start = time.monotonic()
    for i in range(0, wav.size, step):
        if realtime:
            due = start + (i + step) / rate
            time.sleep(max(0.0, due - time.monotonic()))
        yield wav[i: i + step], time.monotonic()


class StreamResampler:
    """Resample a stream block by block with torchaudio's windowed-sinc resampler: each block is cut where the
    resampler's phase is zero and computed with ``margin`` input samples of context on both sides, so the output
    equals resampling the whole recording (to float rounding), ``margin`` samples late."""

    def __init__(self, src: int, dst: int) -> None:
        g = math.gcd(src, dst)
        self.src, self.dst, self.su, self.du = src, dst, src // g, dst // g
        self.margin = self.su * math.ceil(64 / self.su)  # beyond the sinc kernel's reach, on phase boundaries
        self.buf = np.zeros(0, dtype=np.float32)
        self.left = 0  # context samples at the start of buf (none before the first block)

    def push(self, samples: np.ndarray, final: bool = False) -> np.ndarray:
        import torch
        import torchaudio.functional as AF

        x = np.concatenate([self.buf, samples.astype(np.float32)])
        usable = x.size if final else (x.size - self.margin) // self.su * self.su
        if usable <= self.left:
            self.buf = x
            return np.zeros(0, dtype=np.float32)
        y = AF.resample(torch.from_numpy(x[: min(x.size, usable + self.margin)]), self.src, self.dst).numpy()
        out = y[self.left * self.du // self.su: -(-usable * self.du // self.su)]
        keep = max(0, usable - self.margin)
        self.buf, self.left = x[keep:], usable - keep
        return out


def microphone_blocks(rate: int, device: str | int | None = None, block_seconds: float = 0.1) -> Iterator[Block]:
    """Blocks from a microphone (PortAudio through ``sounddevice``) at ``rate``: recorded at that rate when the
    device can, else at the device's own rate and resampled."""
    try:
        import sounddevice as sd
    except ImportError:
        raise LstmAsrError("the microphone needs the sounddevice package: pip install 'lstm-asr[stream]' (or pipe "
                           "audio in: arecord -f S16_LE -r 16000 -c 1 | lstm-asr decode --stream -)") from None
    except OSError:  # sounddevice imports, but PortAudio's shared library is missing
        raise LstmAsrError("the microphone needs the PortAudio library: apt-get install libportaudio2 (or pipe "
                           "audio in: arecord -f S16_LE -r 16000 -c 1 | lstm-asr decode --stream -)") from None
    try:
        info = sd.query_devices(device, "input")
    except (ValueError, sd.PortAudioError) as exc:
        raise LstmAsrError(f"no microphone found ({str(exc).splitlines()[0][:120]}); list devices with "
                           "`python -m sounddevice`, pick one with --device, or pipe audio in with "
                           "`arecord -f S16_LE -r 16000 -c 1 | lstm-asr decode --stream -`") from None
    dev_rate = rate
    try:
        sd.check_input_settings(device=device, samplerate=rate, channels=1, dtype="float32")
    except (ValueError, sd.PortAudioError):
        dev_rate = int(info["default_samplerate"])  # the device cannot record at our rate: resample
    resampler = StreamResampler(dev_rate, rate) if dev_rate != rate else None
    import queue

    blocks: queue.Queue = queue.Queue(maxsize=600)  # a minute of 100 ms blocks: bounded if decoding falls behind

    def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread: copy and hand over
        try:
            blocks.put_nowait((indata[:, 0].copy(), time.monotonic()))
        except queue.Full:
            pass

    try:
        stream = sd.InputStream(samplerate=dev_rate, device=device, channels=1, dtype="float32",
                                blocksize=int(dev_rate * block_seconds), callback=callback)
    except (ValueError, sd.PortAudioError) as exc:
        raise LstmAsrError(f"cannot open the microphone ({str(exc).splitlines()[0][:120]})") from None
    with stream:
        while True:
            samples, arrived = blocks.get()
            if resampler is not None:
                samples = resampler.push(samples)
            yield samples, arrived
