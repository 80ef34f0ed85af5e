"""Tests of the NIST SPHERE reader/writer and its header validation."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from data_prep.sphere import read_sphere, read_sphere_header, write_sphere
from lstm_asr.errors import CorpusError


def sphere_bytes(fields: list[str], data: bytes = b"", header_size: int = 1024, magic: bytes = b"NIST_1A\n") -> bytes:
    """A SPHERE file with the given header lines (``key -type value``) and raw sample data."""
    text = magic + f"{header_size:7d}\n".encode() + "".join(f"{f}\n" for f in fields).encode() + b"end_head\n"
    assert len(text) <= header_size or header_size < 16
    return text + b" " * max(0, header_size - len(text)) + data


STD = ["sample_rate -i 16000", "sample_n_bytes -i 2", "channel_count -i 1", "sample_byte_format -s2 01"]


def write(tmp_path: Path, content: bytes, name: str = "x.wav") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_round_trip_exact_and_libsndfile_agrees(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ints = rng.integers(-32768, 32768, size=1234).astype(np.int16)
    x = ints.astype(np.float32) / 32768
    path = tmp_path / "a.wav"
    write_sphere(path, x, 16000)
    assert path.stat().st_size == 1024 + 2 * 1234
    y, rate = read_sphere(path)
    assert rate == 16000 and y.dtype == np.float32 and y.shape == (1234,)
    np.testing.assert_array_equal(y, x)
    # An independent reader must agree with our writer (and so with our reader).
    z, rate2 = sf.read(path, dtype="int16")
    assert rate2 == 16000
    np.testing.assert_array_equal(z, ints)
    h = read_sphere_header(path)
    assert (h.header_size, h.sample_count, h.channel_count, h.sample_n_bytes) == (1024, 1234, 1, 2)
    assert h.byte_format == "01" and h.coding == "pcm"


def test_reads_libsndfile_nist_output(tmp_path: Path) -> None:
    x = (np.sin(np.arange(800) / 5) * 0.5).astype(np.float32)
    path = tmp_path / "b.wav"
    sf.write(path, x, 8000, format="NIST", subtype="PCM_16")
    y, rate = read_sphere(path)
    assert rate == 8000
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_big_endian_and_stereo(tmp_path: Path) -> None:
    ints = np.array([[1, -2], [300, -32768], [32767, 0]], dtype=">i2")
    fields = ["sample_rate -i 8000", "sample_count -i 3", "sample_n_bytes -i 2", "channel_count -i 2"]
    path = write(tmp_path, sphere_bytes([*fields, "sample_byte_format -s2 10"], ints.tobytes()))
    y, rate = read_sphere(path)
    assert rate == 8000 and y.shape == (3, 2)
    np.testing.assert_array_equal(y, ints.astype(np.float32) / 32768)


def test_string_field_with_spaces_and_reals(tmp_path: Path) -> None:
    fields = [*STD, "sample_count -i 2", "database_id -s5 TIMIT", "prompt -s11 hello world", "gain -r 1.5"]
    path = write(tmp_path, sphere_bytes(fields, b"\0\0\1\0"))
    h = read_sphere_header(path)
    assert h.fields["prompt"] == "hello world" and h.fields["gain"] == 1.5 and h.fields["database_id"] == "TIMIT"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (sphere_bytes([*STD, "sample_count -i 1000000000000"], b"\0" * 100), "truncated"),
        (sphere_bytes([*STD, "sample_count -i 100"], b"\0" * 199), "truncated"),
        (sphere_bytes([*STD, "sample_count -i -5"]), "absurd sample_count"),
        (sphere_bytes([*STD, "sample_count -i 1"], b"\0\0", header_size=9_999_999), "header size"),
        (sphere_bytes([*STD, "sample_count -i 1"], b"\0\0", header_size=2048)[:1500], "exceeds file size"),
        (sphere_bytes([*STD, "sample_count -i 1"], b"\0\0", magic=b"NIST_1B\n"), "NIST_1A"),
        (b"RIFF" + b"\0" * 100, "NIST_1A"),
        (b"", "empty"),
        (sphere_bytes([*STD, "sample_count -i 1", "sample_coding -s7 shorten"], b"\0\0"), "unsupported coding"),
        (sphere_bytes([*STD, "sample_count -i 1", "sample_coding -s4 ulaw"], b"\0\0"), "unsupported coding"),
        (
            sphere_bytes([*STD[:3], "sample_count -i 1", "sample_byte_format -s14 shortpack-v0"], b"\0\0"),
            "unsupported coding",
        ),
        (sphere_bytes(STD, b"\0\0"), "sample_count"),
        (sphere_bytes([*STD, "sample_count -i lots"], b"\0\0"), "bad -i value"),
        (sphere_bytes([*STD[1:], "sample_count -i 1", "sample_rate -i 0"], b"\0\0"), "sample_rate"),
        (sphere_bytes([*STD[:2], "sample_count -i 1", "channel_count -i 100000"], b"\0\0"), "channel_count"),
        (sphere_bytes([*STD[:1], "sample_count -i 1", "sample_n_bytes -i 3"], b"\0\0\0"), "sample_n_bytes"),
        (sphere_bytes([*STD, "sample_count -i 1"], b"\0\0").replace(b"end_head", b" " * 8), "end_head"),
        (b"NIST_1A\n    abc\n" + b" " * 1100, "not a number"),
    ],
)
def test_bad_headers_raise_corpus_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content)
    tracemalloc.start()
    try:
        with pytest.raises(CorpusError) as info:
            read_sphere(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Rejected from the header alone: no attempt to allocate or read 10^12 samples (or a 10 MB header). Measured in
    # bytes allocated, not in seconds: a time bound fails on a busy machine and cannot see a lazily mapped buffer.
    assert peak < 1 << 20, f"{peak} bytes allocated for a file of {len(content)}"
    assert str(path) in str(info.value) and message in str(info.value)


def test_missing_file_is_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="cannot read"):
        read_sphere_header(tmp_path / "nope.wav")


def test_trailing_bytes_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, sphere_bytes([*STD, "sample_count -i 1"], b"\1\0" + b"\0" * 7))
    y, _ = read_sphere(path)
    assert y.shape == (1,) and y[0] == 1 / 32768
