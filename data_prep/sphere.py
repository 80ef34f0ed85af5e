"""NIST SPHERE (``NIST_1A``) audio files, as shipped in LDC's TIMIT.

We parse the header ourselves instead of handing the file to libsndfile so that a damaged header (absurd
sample count, huge header size, truncated data, compressed coding) is rejected with a clear
:class:`~lstm_asr.errors.CorpusError` *before* any sample buffer is allocated. Only uncompressed PCM is
supported; shorten/ulaw/wavpack files must be decoded first (e.g. with ``sph2pipe``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_asr.errors import CorpusError

MAGIC = b"NIST_1A\n"
# The 8-byte magic is followed by the header size as 7 ASCII characters and a newline.
_PREAMBLE_SIZE = 16
_MAX_HEADER_SIZE = 1 << 20
_MAX_SAMPLE_RATE = 1_000_000
_MAX_CHANNELS = 64
_SUPPORTED_N_BYTES = (1, 2, 4)
# Codings that mean "plain linear PCM"; anything else (shorten, ulaw, alaw, wavpack, ...) is refused.
_PCM_CODINGS = ("", "pcm")


@dataclass(frozen=True)
class SphereHeader:
    """The parsed, validated header of a SPHERE file."""

    header_size: int
    sample_rate: int
    sample_count: int
    channel_count: int
    sample_n_bytes: int
    byte_format: str
    coding: str
    fields: dict[str, str | int | float] = field(default_factory=dict)

    @property
    def data_bytes(self) -> int:
        """Bytes of sample data the header announces."""
        return self.sample_count * self.sample_n_bytes * self.channel_count

    @property
    def big_endian(self) -> bool:
        """True when multi-byte samples are stored most significant byte first."""
        return self.byte_format in ("10", "3210")


def _parse_fields(path: Path, text: str) -> dict[str, str | int | float]:
    """Parse the ``key -type value`` lines after the preamble, up to ``end_head``."""
    fields: dict[str, str | int | float] = {}
    lines = text.split("\n")
    for lineno, raw in enumerate(lines[2:], start=3):
        line = raw.rstrip("\r")
        if line.strip() == "end_head":
            return fields
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[1].startswith("-"):
            raise CorpusError(path, f"SPHERE header line {lineno}: expected 'key -type value', got {line!r}")
        key, kind, value = parts
        try:
            if kind == "-i":
                fields[key] = int(value.strip())
            elif kind == "-r":
                fields[key] = float(value.strip())
            elif kind.startswith("-s"):
                # -sN: a string of N characters, which may contain spaces; be lenient if N disagrees.
                n = int(kind[2:]) if len(kind) > 2 else len(value)
                fields[key] = value[:n] if 0 <= n <= len(value) else value
            else:
                raise CorpusError(path, f"SPHERE header line {lineno}: unknown field type {kind!r}")
        except ValueError:
            problem = f"SPHERE header line {lineno}: bad {kind} value {value.strip()!r}"
            raise CorpusError(path, problem) from None
    raise CorpusError(path, "SPHERE header has no 'end_head' line")


def _int_field(path: Path, fields: dict[str, str | int | float], key: str, default: int | None = None) -> int:
    value = fields.get(key, default)
    if value is None:
        raise CorpusError(path, f"SPHERE header lacks required field {key!r}")
    if not isinstance(value, int):
        raise CorpusError(path, f"SPHERE header field {key!r} must be an integer, got {value!r}")
    return value


def read_sphere_header(path: str | Path) -> SphereHeader:
    """Read and validate the header of the SPHERE file at ``path``.

    Checks the magic, a sane header size (at most 1 MiB), the required fields, plausible values, PCM coding,
    and that the announced data fits in the file (a truncated file is an error). Raises CorpusError.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            file_size = os.fstat(f.fileno()).st_size
            preamble = f.read(_PREAMBLE_SIZE)
            if not preamble:
                raise CorpusError(path, "empty file")
            if not preamble.startswith(MAGIC):
                raise CorpusError(path, "not a NIST SPHERE file (no NIST_1A magic)")
            if len(preamble) < _PREAMBLE_SIZE or preamble[15:16] != b"\n":
                raise CorpusError(path, "SPHERE preamble truncated or malformed")
            try:
                header_size = int(preamble[8:15].decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raise CorpusError(path, f"SPHERE header size is not a number: {preamble[8:15]!r}") from None
            if not _PREAMBLE_SIZE < header_size <= _MAX_HEADER_SIZE:
                raise CorpusError(path, f"absurd SPHERE header size {header_size} (max {_MAX_HEADER_SIZE})")
            if header_size > file_size:
                raise CorpusError(path, f"SPHERE header size {header_size} exceeds file size {file_size}")
            f.seek(0)
            raw = f.read(header_size)
    except OSError as e:
        raise CorpusError(path, f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.split(b"\0", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise CorpusError(path, "SPHERE header is not ASCII text") from None
    fields = _parse_fields(path, text)

    sample_rate = _int_field(path, fields, "sample_rate")
    sample_count = _int_field(path, fields, "sample_count")
    channel_count = _int_field(path, fields, "channel_count", 1)
    n_bytes = _int_field(path, fields, "sample_n_bytes")
    coding = str(fields.get("sample_coding", "")).strip().lower()
    byte_format = str(fields.get("sample_byte_format", "1" if n_bytes == 1 else "")).strip()

    if coding not in _PCM_CODINGS:
        raise CorpusError(path, f"unsupported coding {coding!r} (only PCM; decode with sph2pipe)")
    if byte_format.startswith("shortpack"):
        raise CorpusError(path, f"unsupported coding {byte_format!r} (shorten; decode with sph2pipe)")
    if not 0 < sample_rate <= _MAX_SAMPLE_RATE:
        raise CorpusError(path, f"absurd sample_rate {sample_rate}")
    if not 0 < channel_count <= _MAX_CHANNELS:
        raise CorpusError(path, f"absurd channel_count {channel_count}")
    if n_bytes not in _SUPPORTED_N_BYTES:
        raise CorpusError(path, f"unsupported sample_n_bytes {n_bytes} (supported: {_SUPPORTED_N_BYTES})")
    if n_bytes > 1 and byte_format not in ("01", "10", "0123", "3210"):
        raise CorpusError(path, f"unsupported sample_byte_format {byte_format!r}")
    if sample_count < 0:
        raise CorpusError(path, f"absurd sample_count {sample_count}")
    # Compare in Python ints (no overflow) before anything is allocated; extra trailing bytes are tolerated.
    needed = sample_count * n_bytes * channel_count
    available = file_size - header_size
    if needed > available:
        raise CorpusError(
            path,
            f"truncated: header announces {sample_count} samples x {channel_count} channels x {n_bytes} "
            f"bytes = {needed} bytes of data, file has {available}",
        )
    return SphereHeader(
        header_size=header_size,
        sample_rate=sample_rate,
        sample_count=sample_count,
        channel_count=channel_count,
        sample_n_bytes=n_bytes,
        byte_format=byte_format,
        coding=coding or "pcm",
        fields=fields,
    )


def read_sphere(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM SPHERE file as float32 in [-1, 1] and its sample rate.

    The array has shape (n,) for mono and (n, channels) otherwise. Raises CorpusError on any bad file.
    """
    path = Path(path)
    header = read_sphere_header(path)
    try:
        with open(path, "rb") as f:
            f.seek(header.header_size)
            data = f.read(header.data_bytes)
    except OSError as e:
        raise CorpusError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) != header.data_bytes:  # the file shrank between the two opens
        raise CorpusError(path, "truncated sample data")
    endian = ">" if header.big_endian else "<"
    dtype = np.dtype(f"{endian}i{header.sample_n_bytes}")
    ints = np.frombuffer(data, dtype=dtype)
    scale = float(1 << (8 * header.sample_n_bytes - 1))
    samples = (ints.astype(np.float32) / np.float32(scale)).astype(np.float32, copy=False)
    if header.channel_count > 1:
        samples = samples.reshape(header.sample_count, header.channel_count)
    return samples, header.sample_rate


def write_sphere(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write ``samples`` as a 16-bit little-endian PCM SPHERE file with a 1024-byte header.

    ``samples`` is float in [-1, 1] (clipped) or int16, shape (n,) or (n, channels).
    """
    arr = np.asarray(samples)
    if arr.ndim not in (1, 2):
        raise ValueError(f"samples must be 1-D or 2-D (n, channels), got shape {arr.shape}")
    channels = 1 if arr.ndim == 1 else arr.shape[1]
    if arr.dtype == np.int16:
        pcm = arr
    elif np.issubdtype(arr.dtype, np.floating):
        # Scale by 32768 so that read_sphere(write_sphere(x)) is exact for x = int16 / 32768.
        pcm = np.clip(np.round(arr * 32768.0), -32768, 32767).astype(np.int16)
    else:
        raise ValueError(f"samples must be float or int16, got {arr.dtype}")
    lines = [
        "NIST_1A",
        "   1024",
        f"sample_count -i {arr.shape[0]}",
        f"sample_rate -i {int(sample_rate)}",
        f"channel_count -i {channels}",
        "sample_n_bytes -i 2",
        "sample_byte_format -s2 01",
        "sample_coding -s3 pcm",
        "sample_sig_bits -i 16",
        "end_head",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    header += b" " * (1024 - len(header))
    with open(path, "wb") as f:
        f.write(header)
        f.write(pcm.astype("<i2", copy=False).tobytes())
