"""Property-based fuzzing of the readers of untrusted files (hypothesis).

Every reader of a file someone else wrote -- NIST SPHERE, TIMIT ``.PHN``/``.WRD``/``.TXT``, IAM-OnDB stroke XML,
InkML, UNIPEN, ARPA language models, YAML recipes -- must, for ANY input, either return a well-formed result or
raise the project's own error type (:class:`lstm_asr.errors.LstmAsrError` and subclasses): never another exception,
never a hang, never an allocation out of proportion to the input (a header claiming 10^12 samples must be refused,
not allocated). Inputs come from three kinds of strategies: structured generators of the format (with random numbers
and strings in every field), byte-level mutations of valid files (flip, insert, delete, duplicate, truncate), and
raw bytes; structured ones reach the deep code that random bytes never get past the magic number to.

Profiles: ``ci`` (the default: 150 examples per reader, derandomised so CI is reproducible) and ``long`` (20,000
per reader, random seed)::

    HYPOTHESIS_PROFILE=long OMP_NUM_THREADS=1 pytest -p no:cacheprovider tests/test_fuzz.py

Each example runs under a wall-clock alarm (a hang fails instead of blocking), with ``tracemalloc`` measuring its
peak allocation, and inside an address-space limit so a runaway allocation fails fast instead of swapping.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import resource
import signal
import string
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from data_prep.arctic import read_lab
from data_prep.audio_folder import read_transcript
from data_prep.iam_ondb import read_ink, read_strokes
from data_prep.inkml import read_inkml
from data_prep.phones import TIMIT_61, TRAIN_PHONES
from data_prep.recorded import read_prompts
from data_prep.speechocean762 import read_text_phone
from data_prep.sphere import read_sphere
from data_prep.timit import read_phn, read_txt, read_wrd
from data_prep.unipen import read_document, read_unipen, segment_ink
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink
from lstm_asr.decoding.ngram import build_ngram, read_arpa
from lstm_asr.errors import LstmAsrError
from lstm_asr.path_names import name_problem
from lstm_asr.recipe import Recipe, dump_recipe, load_recipe

# No explain phase: it traces every line executed, which makes PyYAML's deep-recursion errors take minutes.
# No per-example deadline either: hypothesis fails a test whose example ran over it once but not when re-run
# ("Unreliable test timings"), which a busy 2-core machine provokes; a hang is caught by HANG_SECONDS below.
_COMMON = {"deadline": None, "database": None, "print_blob": True,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile("long", max_examples=20_000, **_COMMON)
FUZZ = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci")))
if os.environ.get("FUZZ_EXAMPLES"):  # e.g. FUZZ_EXAMPLES=2000 with the long profile: a run of a few minutes
    FUZZ = settings(FUZZ, max_examples=int(os.environ["FUZZ_EXAMPLES"]))

HANG_SECONDS = 20  # one example of a few kB taking this long is a hang
PEAK_BYTES = 64 << 20  # inputs are at most ~100 kB; a reader allocating 64 MB for one is out of proportion
REPO = Path(__file__).resolve().parents[1]


# --- the property, and the guards around it ----------------------------------------------------------------------


class _Hang(Exception):
    """Raised by the alarm (an Exception, so hypothesis reports and shrinks the input that hung)."""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for the fuzzed files, with the address-space limit on for the module's tests."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        vsize = int(f.read().split()[0]) * resource.getpagesize()
    limit = vsize + (4 << 30)  # 4 GiB on top of what the process has mapped: far above any honest example
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield tmp_path_factory.mktemp("fuzz")
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def on_alarm(*_: Any) -> None:
        raise _Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def parsed_or_own_error(read: Callable[..., Any], *args: Any, trace: bool = True) -> Any:
    """``read(*args)``'s result, or None when it raised LstmAsrError; any other exception, a hang, or (with
    ``trace``) a peak allocation over PEAK_BYTES fails the test."""
    if trace:
        tracemalloc.start()  # only around the reader: tracing hypothesis' own work would slow the test twofold
    try:
        with _alarm(HANG_SECONDS):
            result = read(*args)
    except LstmAsrError as exc:
        message = str(exc)
        assert message and "\n" not in message, f"not a one-line message: {message!r}"
        result = None
    finally:
        peak = tracemalloc.get_traced_memory()[1] if trace else 0
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{read.__name__} allocated {peak / 2**20:.0f} MiB for a small input"
    if currently_in_test_context():  # statistics for --hypothesis-show-statistics
        event(f"{read.__name__}: {'own error' if result is None else 'parsed'}")
    return result


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# --- generic byte mutations ----------------------------------------------------------------------------------------

INTERESTING = [b"0", b"-1", b"1", b"65536", b"4294967296", b"999999999999", b"1" * 30, b"9" * 5000, b"1e999",
               b"-1e999", b"nan", b"inf", b"0x10", b"1_0", b"\xd9\xa3", b"\n", b"\r\n", b"\0", b" ", b"\t", b"-",
               b"=", b",", b"'", b'"', b"<", b">", b"&", b"&amp;", b";", b"]]>", b"\xff\xfe", b"\xc3\x28", b"\\",
               b"..", b"/"]


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes], tokens: list[bytes] = INTERESTING) -> bytes:
    """``base`` with up to 6 edits: bit flips, byte sets, inserts (random or format tokens), deletes, duplicated
    chunks and truncation."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "token", "delete", "dup", "truncate"]))
        pos = draw(st.integers(0, len(data)))
        if op in ("flip", "set") and data:
            pos = min(pos, len(data) - 1)
            data[pos] = data[pos] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(tokens))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == "dup":
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def numberish(low: int = -10, high: int = 10**15) -> st.SearchStrategy[str]:
    """Text for a numeric field: mostly integers (small, huge, negative), sometimes not a clean integer."""
    return st.one_of(st.integers(low, high).map(str), st.integers(0, 300).map(str),
                     st.sampled_from(["", "0", "-0", "+5", "1e3", "1.5", "0x10", "1_000", "nan", "inf", " 7 ",
                                      "\u0663", "9" * 5000, "-" + "9" * 30]),
                     st.text(alphabet=string.printable, max_size=6))


# --- NIST SPHERE ---------------------------------------------------------------------------------------------------


@st.composite
def sphere_files(draw: st.DrawFn) -> bytes:
    """A SPHERE file whose fields, header size and data length are drawn: half of them valid (so the sample
    decoding is reached), the others with damaged, missing, extra or absurd fields."""
    clean = draw(st.booleans())
    n_bytes = draw(st.sampled_from([1, 2, 4]) if clean else st.sampled_from([1, 2, 4]) | st.integers(-2, 9))
    channels = draw(st.sampled_from([1, 1, 2]) if clean else st.sampled_from([1, 2]) | st.integers(-2, 70))
    count = draw(st.integers(0, 200) if clean else st.integers(0, 200) | st.integers(-5, 10**13))
    formats = {1: ["1", ""], 2: ["01", "10"], 4: ["0123", "3210"]}
    byte_format = draw(st.sampled_from(formats[n_bytes]) if clean else
                       st.sampled_from(["01", "10", "0123", "3210", "1", "", "shortpack-v0", "2301"]))
    coding = draw(st.sampled_from(["pcm", "PCM"] if clean else ["pcm", "ulaw", "pcm,embedded-shorten-v2.00"]))
    values = {"sample_count": ("-i", str(count)), "sample_rate": ("-i", draw(st.sampled_from(["16000", "8000"]))),
              "channel_count": ("-i", str(channels)), "sample_n_bytes": ("-i", str(n_bytes)),
              "sample_byte_format": (f"-s{len(byte_format)}", byte_format), "sample_coding": ("-s3", coding)}
    extra: list[tuple[str, str, str]] = []
    if not clean:
        for key in draw(st.lists(st.sampled_from(sorted(values)), max_size=3, unique=True)):  # damage some fields
            kind = draw(st.sampled_from(["-i", "-r", "-s", "-s3", "-s-2", "-x", "", "i"]))
            values[key] = (kind, draw(numberish()))
        for key in draw(st.lists(st.sampled_from(sorted(values)), max_size=2)):
            values.pop(key, None)
        extra = draw(st.lists(st.tuples(st.text(string.ascii_letters + "_", min_size=1, max_size=8),
                                        st.sampled_from(["-i", "-r", "-s5"]), numberish()), max_size=3))
    lines = [f"{k} {kind} {v}" for k, (kind, v) in values.items()] + [f"{k} {kind} {v}" for k, kind, v in extra]
    body = ("NIST_1A\n" + "{size}\n" + "\n".join(lines) + "\nend_head\n").encode("ascii", "replace")
    size = draw(st.sampled_from([1024, len(body) + 1] if clean else [1024]) | st.integers(-10, 2**20 + 10))
    size_text = draw(st.sampled_from([f"{size:7d}", f"{size:<7d}"]) if clean else
                     st.sampled_from([f"{size:7d}", f"{size:07d}"]) | numberish().map(str))
    header = body.replace(b"{size}", size_text.encode("ascii", "replace")[:7].ljust(7))
    header += b" " * max(0, size - len(header))
    announced = max(count, 0) * max(n_bytes, 0) * max(channels, 0)
    n_data = draw(st.sampled_from([announced, announced + 3] if clean else [max(announced - 1, 0), announced])
                  if announced <= 4096 else st.integers(0, 4096))
    return header + draw(st.binary(min_size=n_data, max_size=n_data))


@FUZZ
@given(data=st.one_of(sphere_files(), mutated(sphere_files(), INTERESTING + [b"end_head", b"-i", b"-s2"]),
                      st.binary(max_size=2048), st.binary(max_size=512).map(lambda b: b"NIST_1A\n   1024\n" + b)))
def test_sphere_reader(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_sphere, write(scratch, "x.sph", data))
    if got is not None:
        samples, rate = got
        assert samples.dtype == np.float32 and 0 < rate <= 1_000_000
        assert np.all(np.isfinite(samples)) and np.all(np.abs(samples) <= 1.0)
        assert samples.ndim in (1, 2) and samples.size <= len(data)


# --- TIMIT transcriptions -----------------------------------------------------------------------------------------


@st.composite
def segment_files(draw: st.DrawFn) -> bytes:
    """``begin end label`` lines: ordered, non-overlapping segments with TIMIT phones, or drawn numbers/labels."""
    clean = draw(st.booleans())  # half valid files, so the readers' success paths are exercised too
    n = draw(st.integers(1 if clean else 0, 12))
    bounds = sorted(draw(st.lists(st.integers(0, 60000), min_size=n + 1, max_size=n + 1, unique=True)))
    lines = []
    for i in range(n):
        begin, end = str(bounds[i]), str(bounds[i + 1])
        if not clean and draw(st.integers(0, 4)) == 0:
            begin, end = draw(numberish(-100, 10**20)), draw(numberish(-100, 10**20))
        label = draw(st.sampled_from(TIMIT_61) if clean or draw(st.booleans()) else
                     st.text(string.ascii_letters + "#'-", min_size=1, max_size=6))
        sep = draw(st.sampled_from([" ", "\t", "  "]))
        lines.append(sep.join([begin, end, label]) + draw(st.sampled_from(["", " "] if clean else ["", " extra"])))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r", "\x0b", "\u2028"]))
    codec = "utf-8" if clean else draw(st.sampled_from(["utf-8", "utf-16"]))
    return (eol.join(lines) + draw(st.sampled_from(["", eol, eol * 2]))).encode(codec)


SEGMENTS = st.one_of(segment_files(), mutated(segment_files()), st.binary(max_size=1024),
                     st.text(max_size=300).map(str.encode))


@FUZZ
@given(data=SEGMENTS)
def test_phn_reader(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_phn, write(scratch, "x.phn", data))
    if got is not None:
        assert got and all(0 <= b < e and p in TIMIT_61 for b, e, p in got)
        assert all(e0 <= b1 for (_, e0, _), (b1, _, _) in zip(got, got[1:], strict=False))


@FUZZ
@given(data=SEGMENTS)
def test_wrd_and_txt_readers(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_wrd, write(scratch, "x.wrd", data))
    if got is not None:
        assert got and all(0 <= b < e and w and not any(c.isspace() for c in w) for b, e, w in got)
        assert all(b0 <= b1 for (b0, _, _), (b1, _, _) in zip(got, got[1:], strict=False))
    text = parsed_or_own_error(read_txt, write(scratch, "x.txt", data))
    assert text is None or isinstance(text, str)


# --- recorded speech corpora: festival prompts, festvox .lab, speechocean762's text-phone ------------------------


@st.composite
def prompt_files(draw: st.DrawFn) -> bytes:
    """Festival ``( id "text" )`` lines and ``id text`` lines, clean or with drawn ids, quotes and brackets."""
    clean = draw(st.booleans())
    lines = []
    for i in range(draw(st.integers(1 if clean else 0, 8))):
        pid = f"arctic_a{i:04d}" if clean else draw(st.text(string.printable, max_size=8))
        text = draw(st.text(string.ascii_letters + " ,.'" + ("" if clean else '"()\\'), min_size=1, max_size=40))
        lines.append(f'( {pid} "{text}" )' if draw(st.booleans()) else f"{pid}\t{text}")
    return "\n".join(lines).encode("utf-8" if clean else draw(st.sampled_from(["utf-8", "utf-16"])))


@FUZZ
@given(data=st.one_of(prompt_files(), mutated(prompt_files(), INTERESTING + [b"(", b")", b'"']),
                      st.binary(max_size=512)))
def test_prompts_reader(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_prompts, write(scratch, "p.data", data))
    if got is not None:
        assert got and all(isinstance(k, str) and k and not any(c.isspace() for c in k) for k in got)
    text = parsed_or_own_error(read_transcript, write(scratch, "t.txt", data))
    assert text is None or "\n" not in text


@st.composite
def lab_files(draw: st.DrawFn) -> bytes:
    """festvox label files: an optional header ended by ``#``, then ``<end> 125 <phone>`` lines."""
    clean = draw(st.booleans())
    ends = sorted(draw(st.lists(st.floats(0, 30), min_size=1, max_size=12)))
    phones = st.sampled_from([*TRAIN_PHONES, "pau", "ssil", "brth"]) if clean else st.text(string.printable,
                                                                                            max_size=5)
    lines = [f"{e if clean else draw(numberish())} 125 {draw(phones)}" for e in ends]
    head = draw(st.sampled_from(["", "separator ;\nnfields 1\n#\n", "#\n"]))
    return (head + "\n".join(lines)).encode()


@FUZZ
@given(data=st.one_of(lab_files(), mutated(lab_files(), INTERESTING + [b"#", b"125"]), st.binary(max_size=512)))
def test_lab_reader(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_lab, write(scratch, "x.lab", data))
    if got is not None:
        assert got and all(p in TIMIT_61 for p in got) and any(p != "pau" for p in got)


@FUZZ
@given(data=st.one_of(st.lists(st.tuples(st.text("0123456789.", min_size=1, max_size=12),
                                         st.lists(st.sampled_from(["W_B", "IY0_E", "AH0_I", "T", "X1_S", "_E"]),
                                                  max_size=4)), max_size=8)
                      .map(lambda rows: "".join(f"{k}\t{' '.join(p)}\n" for k, p in rows).encode()),
                      st.binary(max_size=512)))
def test_text_phone_reader(scratch: Path, data: bytes) -> None:
    got = parsed_or_own_error(read_text_phone, write(scratch, "text-phone", data))
    if got is not None:
        assert all(words == sorted(words) for words in got.values())


# --- pen strokes: IAM-OnDB XML and InkML -------------------------------------------------------------------------

COORD = st.one_of(st.integers(-5000, 5000).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.floats(-1e6, 1e6).map(lambda x: f"{x:.3f}"), st.sampled_from(["1e308", "-1e308", "1e200", "",
                                                                                   " 3", "0x1p3", "1_0"]),
                  st.text(max_size=4))


def ink_checked(ink: Any) -> Any:
    """A parsed Ink is sane, and prep's feature pipeline on it ends in finite features or an LstmAsrError."""
    assert ink.num_points > 0
    assert all(s.ndim == 2 and s.shape[1] == 3 and np.all(np.isfinite(s)) for s in ink.strokes)
    def featurize(ink: Any) -> np.ndarray:
        return featurize_ink(ink, InkFeatureConfig())[0]

    feats = parsed_or_own_error(featurize, ink)
    if feats is not None:
        assert feats.ndim == 2 and feats.shape[1] == 5 and np.all(np.isfinite(feats)), "non-finite ink features"
    return ink


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


@st.composite
def stroke_xml(draw: st.DrawFn) -> bytes:
    clean = draw(st.booleans())  # half plausible pen data, so the feature pipeline runs on what is read
    strokes = []
    for _ in range(draw(st.integers(1 if clean else 0, 4))):
        points = []
        t0 = draw(st.floats(0, 1e5))
        for i in range(draw(st.integers(1 if clean else 0, 25))):
            if clean or draw(st.integers(0, 7)):
                x, y, t = (str(draw(st.integers(0, 8000))), str(draw(st.integers(0, 3000))),
                           f"{t0 + i * draw(st.sampled_from([0.01, 0.0, -0.01])):.3f}")
            else:
                x, y, t = draw(COORD), draw(COORD), draw(COORD)
            attrs = {"x": x, "y": y, "time": t}
            for key in [] if clean else draw(st.lists(st.sampled_from(["x", "y", "time"]), max_size=1)):
                del attrs[key]
            points.append("<Point " + " ".join(f'{k}="{_escape(v)}"' for k, v in attrs.items()) + "/>")
        strokes.append('<Stroke colour="black">' + "".join(points) + "</Stroke>")
    if draw(st.integers(0, 4)) == 0:  # magnitudes where sums and differences overflow
        scale = draw(st.sampled_from(["e150", "e300", "e307"]))
        strokes = [re.sub(r'(x|time)="(-?[\d.]+)"', rf'\1="\2{scale}"', s) for s in strokes]
    root = draw(st.sampled_from(["WhiteboardCaptureSession"] if clean else ["WhiteboardCaptureSession", "ink",
                                                                             "Other"]))
    decl = draw(st.sampled_from(['<?xml version="1.0" encoding="ISO-8859-1"?>', '<?xml version="1.0"?>', ""]
                                if clean else ['<?xml version="1.0" encoding="bogus"?>', "",
                                               '<?xml version="1.0" encoding="UTF-16"?>',
                                               '<!DOCTYPE x [<!ENTITY a "b">]>']))
    doc = f"{decl}<{root}><StrokeSet>{''.join(strokes)}</StrokeSet></{root}>"
    return doc.encode("iso-8859-1", "replace")


XML_TOKENS = INTERESTING + [b"<Point x='1' y='2' time='3'/>", b"</Stroke>", b"<Stroke>", b"<!DOCTYPE a>",
                            b"<!ENTITY e 'x'>", b"&e;", b"<![CDATA[", b"<?pi?>", b"<!--", b"-->", b"&#0;",
                            b"&#x110000;"]


@FUZZ
@given(data=st.one_of(stroke_xml(), mutated(stroke_xml(), XML_TOKENS), st.binary(max_size=1024),
                      st.text(alphabet="<>/=\"'& abcxyPointStroke?!-[]", max_size=200).map(str.encode)))
def test_iam_ondb_stroke_reader(scratch: Path, data: bytes) -> None:
    path = write(scratch, "x.xml", data)
    ink = parsed_or_own_error(read_strokes, path)
    if ink is not None:
        ink_checked(ink)
    either = parsed_or_own_error(read_ink, path)  # dispatch on the root element
    if either is not None:
        ink_checked(either)


@st.composite
def inkml_files(draw: st.DrawFn) -> bytes:
    clean = draw(st.booleans())  # half plausible pen data, so the feature pipeline runs on what is read
    names = draw(st.lists(st.sampled_from(["X", "Y", "T", "F", "x", ""]), max_size=5))
    if clean or draw(st.booleans()):
        names = ["X", "Y"] + (["T"] if draw(st.booleans()) else [])
    units = draw(st.sampled_from(["", "ms", "s"]))
    fmt = "" if not names and draw(st.booleans()) else "<traceFormat>" + "".join(
        f'<channel name="{n}"' + (f' units="{units}"' if n == "T" and units else "") + "/>" for n in names
    ) + "</traceFormat>"
    traces = []
    width = max(len(names), 2)
    magnitude = draw(st.sampled_from(["", "", "", "e150", "e300", "e307"]))
    for _ in range(draw(st.integers(1 if clean else 0, 4))):
        rows = []
        for i in range(draw(st.integers(1 if clean else 0, 25))):
            if clean or draw(st.integers(0, 7)):
                row = [str(draw(st.integers(0, 5000))) for _ in range(width)]
                if "T" in names:
                    row[names.index("T")] = str(i * 10)
            else:
                row = [draw(COORD | st.sampled_from(["'3", '"2', "!", "*", "?", "-"]))
                       for _ in range(draw(st.integers(0, width + 1)))]
            if magnitude:  # sums and differences of such values overflow
                row = [v + magnitude if v.isdigit() else v for v in row]
            rows.append(" ".join(row))
        traces.append("<trace>" + draw(st.sampled_from([",", ", ", " ,"])).join(rows) + "</trace>")
    ns = draw(st.sampled_from([' xmlns="http://www.w3.org/2003/InkML"', ""]))
    truth = draw(st.sampled_from(["", '<annotation type="truth">hello</annotation>']))
    return f"<ink{ns}>{fmt}{truth}{''.join(traces)}</ink>".encode()


@FUZZ
@given(data=st.one_of(inkml_files(), mutated(inkml_files(), XML_TOKENS + [b"<trace>", b"</trace>", b"'", b'"']),
                      st.binary(max_size=512).map(lambda b: b"<ink><trace>" + b + b"</trace></ink>")))
def test_inkml_reader(scratch: Path, data: bytes) -> None:
    ink = parsed_or_own_error(read_inkml, write(scratch, "x.inkml", data))
    if ink is not None:
        ink_checked(ink)


# --- UNIPEN .KEYWORD files ---------------------------------------------------------------------------------------

UNIPEN_KEYWORDS = [b".PEN_DOWN", b".PEN_UP", b".SEGMENT", b".INCLUDE", b".COORD", b".DT", b".X_POINTS_PER_INCH",
                   b".POINTS_PER_SECOND", b".START_SET", b".COMMENT", b"\n.", b'"', b"\\", b":", b"-", b","]


@st.composite
def unipen_files(draw: st.DrawFn) -> bytes:
    """A UNIPEN file: a header (columns, resolution, rate, maybe an include of itself or of nothing), pen blocks of
    random points (some bare), and .SEGMENTs with random delineations, qualities and labels."""
    number = st.one_of(st.integers(-3000, 3000).map(str), COORD)
    cols = draw(st.sampled_from(["X Y", "X Y T", "X Y P", "T X Y", "X", "Y X Y", "", "X Y T P Q"]))
    lines = [".VERSION 1.0", f".COORD {cols}"]
    for key in draw(st.lists(st.sampled_from(["X_POINTS_PER_INCH", "Y_POINTS_PER_INCH", "X_POINTS_PER_MM",
                                              "POINTS_PER_SECOND", "DT", "WRITER_ID", "HIERARCHY", "START_BOX",
                                              "INCLUDE", "MYSTERY"]), max_size=4)):
        value = draw(st.sampled_from(["x.dat", "../x.dat", "none.dat", "/etc/hostname", ""])) if key == "INCLUDE" \
            else draw(number)
        lines.append(f".{key} {value}")
    ncols = max(1, len(cols.split()))
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(st.sampled_from([".PEN_DOWN", ".PEN_UP"])))
        for _ in range(draw(st.integers(0, 6))):
            lines.append(" ".join(draw(number) for _ in range(draw(st.integers(max(1, ncols - 1), ncols + 1)))))
    ref = st.one_of(st.integers(0, 8).map(str), st.integers(0, 8).map(lambda k: f"{k}:{k % 3}"), number)
    for _ in range(draw(st.integers(0, 4))):
        delin = draw(st.lists(st.tuples(ref, st.one_of(st.none(), ref)), min_size=1, max_size=3))
        text = ",".join(a if b is None else f"{a}-{b}" for a, b in delin)
        quality = draw(st.sampled_from(["GOOD", "OK", "BAD", "?", "", "WEIRD"]))
        label = draw(st.text(max_size=6)).replace("\n", " ")
        lines.append(f'.SEGMENT {draw(st.sampled_from(["WORD", "TEXT", ""]))} {text} {quality} "{label}"')
    return "\n".join(lines).encode("iso-8859-1", errors="replace") + b"\n"


@FUZZ
@given(data=st.one_of(unipen_files(), mutated(unipen_files(), INTERESTING + UNIPEN_KEYWORDS),
                      st.binary(max_size=512).map(lambda b: b".PEN_DOWN\n" + b + b"\n.SEGMENT WORD 0 OK \"a\"\n")))
def test_unipen_reader(scratch: Path, data: bytes) -> None:
    """Every segment is read into sane ink that featurises (with the device-independence options too), or the
    reader says why in one line."""
    path = write(scratch, "x.dat", data)
    doc = parsed_or_own_error(read_document, path, scratch)
    if doc is None:
        return
    device_free = InkFeatureConfig(resolution=True, arc_weighted=True, pen_up_time=False, spacing=0.3)
    for seg in doc.segments[:4]:
        ink = parsed_or_own_error(segment_ink, doc, seg)
        if ink is not None:
            ink_checked(ink)
            feats = parsed_or_own_error(lambda i: featurize_ink(i, device_free)[0], ink)
            if feats is not None:
                assert np.all(np.isfinite(feats))
    if doc.segments:  # assembled lines too
        part = "line:" + "|".join(seg.delineation for seg in doc.segments[:3])
        line = parsed_or_own_error(lambda: read_unipen(path, part))
        if line is not None:
            ink_checked(line[0])


# --- ARPA language models -----------------------------------------------------------------------------------------

_VALID_ARPA = []


def _valid_arpa(folder: Path) -> list[str]:
    """Lines of two small real ARPA files (orders 2 and 3), written by our own estimator."""
    if not _VALID_ARPA:
        sents = [s.split() for s in ["a b c", "b c d a", "c a", "d d b a c"]]
        for order, method in ((2, "kneser-ney"), (3, "witten-bell")):
            build_ngram(sents, order, method).write_arpa(folder / "base.arpa")
            _VALID_ARPA.append((folder / "base.arpa").read_text())
    return _VALID_ARPA


@st.composite
def arpa_files(draw: st.DrawFn, folder: Path) -> bytes:
    lines = draw(st.sampled_from(_valid_arpa(folder))).split("\n")
    clean = draw(st.booleans())  # half: only numbers changed, so the model loads and is scored
    for _ in range(draw(st.integers(0, 4))):  # line-level edits keep the structure recognisable
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["number"] if clean else ["drop", "dup", "count", "field", "section", "swap"]))
        if op == "number":
            fields_ = lines[i].split("\t")
            if len(fields_) > 1:
                k = draw(st.sampled_from([0, len(fields_) - 1]))
                fields_[k] = draw(st.sampled_from(["-inf", "-99", "0", "-1e308", "inf", "nan"]) |
                                  st.floats(-50, 0).map(str))
                lines[i] = "\t".join(fields_)
        elif op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "count":
            lines.insert(i, f"ngram {draw(numberish(0, 10**13))}={draw(numberish(-1, 10**13))}")
        elif op == "section":
            lines.insert(i, f"\\{draw(numberish(0, 10**13))}-grams:")
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            fields_ = lines[i].split("\t")
            k = draw(st.integers(0, len(fields_)))
            fields_.insert(k, draw(numberish() | st.sampled_from(["-inf", "inf", "-99", "nan", "<s>", "1e308"])))
            lines[i] = "\t".join(fields_)
    return "\n".join(lines).encode()


@FUZZ
@given(data=st.data())
def test_arpa_reader(scratch: Path, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(arpa_files(scratch), mutated(arpa_files(scratch), INTERESTING + [b"\\data\\",
                                                                                             b"\\end\\", b"ngram "]),
                              st.binary(max_size=512).map(lambda b: b"\\data\\\n" + b)))
    lm = parsed_or_own_error(read_arpa, write(scratch, "x.arpa", raw))
    if lm is not None:
        assert lm.order >= 1 and all(k in lm.probs for k in range(1, lm.order + 1))
        words = sorted(lm.vocab)[:4] + ["never-seen"]
        score = lm.score_sentence(words)
        assert not math.isnan(score), "an ARPA file that loads must not score NaN"


# --- recipes -----------------------------------------------------------------------------------------------------


def _schema(cls: type = Recipe, prefix: str = "") -> dict[str, Any]:
    """Every key path of the recipe schema with its default, e.g. {"training.lr": 0.001, ...}."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        inner = default if is_dataclass(default) else None
        if f.name == "generate":
            from lstm_asr.recipe import GenerateSection

            inner = GenerateSection()
        if inner is not None:
            out.update(_schema(type(inner), f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = default
    return out


SCHEMA = _schema()
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**80, 2**80), st.floats(),
                    st.text(max_size=12), st.sampled_from(["../../etc", "/tmp/x", "..", ".", "", "a/b", "1e-3",
                                                           "nan", "-inf", "2021-02-30", "a\nb", "auto"]),
                    st.dates(), st.binary(max_size=4))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5),
                                                                                         inner, max_size=3),
                      max_leaves=8)


@st.composite
def recipe_data(draw: st.DrawFn) -> dict:
    """Recipe data over the real schema: half of it plausible (defaults, small positive numbers, free-form
    metadata), the rest with unknown keys and values of any type."""
    clean = draw(st.booleans())
    data: dict[str, Any] = {"corpus": {"path": "corpus"}}
    keys = sorted(SCHEMA) + ([] if clean else ["training.nope", "nope"]) + ["metadata.x", "metadata.y"]
    for key in draw(st.lists(st.sampled_from(keys), max_size=6)):
        node = data
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else node
        default = SCHEMA.get(key)
        if clean and key.startswith("metadata."):
            value = draw(VALUES)
        elif clean or draw(st.booleans()):
            value = draw(st.just(default) | (st.integers(1, 3) if type(default) is int else
                                             st.floats(0.01, 0.9) if type(default) is float else st.just(default)))
        else:
            value = draw(VALUES)
        node[last] = value
    return data


YAML_TEXT = st.text(alphabet=string.ascii_letters[:6] + string.digits + ":-_ .\n\t[]{},&*!?|>'\"#%@`", max_size=120)
YAML_TOKENS = [b"!!int ", b"!!float ", b"!!timestamp ", b"!!binary ", b"!!set ", b"!!python/object:os.system ",
               b"&a ", b"*a", b"<<: *a\n", b"? ", b"2021-02-30", b"0x" + b"f" * 4000, b"1" * 5000, b"[" * 2000,
               b"{" * 200, b": ", b"- ", b"\n  ", b"%YAML 1.1\n", b"---\n", b"..."]


def recipe_texts() -> st.SearchStrategy[bytes]:
    real = [p.read_bytes() for p in sorted((REPO / "recipes").rglob("*.yaml"))][:4]
    return st.one_of(
        recipe_data().map(lambda d: yaml.safe_dump(d, allow_unicode=True).encode()),
        mutated(recipe_data().map(lambda d: yaml.safe_dump(d).encode()), INTERESTING + YAML_TOKENS),
        mutated(st.sampled_from(real), INTERESTING + YAML_TOKENS),
        YAML_TEXT.map(str.encode),
        st.binary(max_size=256),
    )


OVERRIDES = st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(sorted(SCHEMA)) | st.text(max_size=8),
                               YAML_TEXT | st.sampled_from(["2021-02-30", "!!float x", "[" * 1500, "nan", "../x"])),
                     max_size=2) | st.just([])


@FUZZ
@given(data=recipe_texts(), overrides=OVERRIDES)
def test_recipe_loader(scratch: Path, data: bytes, overrides: list[str]) -> None:
    # No tracemalloc here: it makes PyYAML's RecursionError on deeply nested input take 30 s instead of 1 s. YAML
    # aliases cannot blow up (metadata is bounded) and the address-space limit still stops a runaway.
    recipe = parsed_or_own_error(load_recipe, write(scratch, "r.yaml", data), overrides, trace=False)
    if recipe is not None:
        assert isinstance(recipe, Recipe)
        for name in (recipe.name, recipe.corpus.train_split, recipe.corpus.dev_split, recipe.corpus.test_split):
            assert name_problem(name) is None, f"unsafe folder name {name!r} accepted"
        # What training does with a recipe: dump it as YAML and store it in a weights_only checkpoint.
        as_dict = recipe.to_dict()
        assert repr(yaml.safe_load(dump_recipe(recipe))) == repr(as_dict)  # repr: nan == nan
        buf = io.BytesIO()
        torch.save({"recipe": as_dict}, buf)
        buf.seek(0)
        assert repr(torch.load(buf, weights_only=True)["recipe"]) == repr(as_dict)


# --- Lhotse manifests and Hugging Face dataset folders ------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)


@st.composite
def lhotse_objects(draw: st.DrawFn, audio: str) -> dict[str, Any]:
    """A Lhotse recording, supervision or cut (a cut holds both): in a third of the draws every field is valid
    (so utterances come out and their audio is read), otherwise each field is valid, drawn from its plausible
    range, or any JSON value, and some are missing."""
    clean = draw(st.integers(0, 2)) == 0

    def f(good: Any, other: st.SearchStrategy[Any] | None = None) -> Any:
        if clean:
            return good
        return draw(st.just(good) | (other if other is not None else st.nothing()) | JSON_VALUES)

    channels = f([0, 1], st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True))
    rec = {"id": f("r0", st.sampled_from(["r1", ""])), "sampling_rate": f(16000, st.sampled_from([8000, 1, 0])),
           "num_samples": f(1600, st.integers(0, 20000)), "duration": 0.1, "channel_ids": channels,
           "sources": f([{"type": f("file", st.sampled_from(["url", "command", "memory"])), "channels": channels,
                          "source": f(audio, st.sampled_from(["gone.wav", ""]))}]),
           "transforms": f(None, st.sampled_from([[{"name": "Resample"}], [{"name": "Speed"}], "Speed"]))}

    def sup() -> dict[str, Any]:
        return {"id": f(f"u{draw(st.integers(0, 5))}"), "recording_id": f(rec["id"], st.just("r9")),
                "start": f(0.01, st.floats(-1, 2)), "duration": f(0.05, st.floats(-0.1, 2)),
                "channel": f(0, st.sampled_from([1, [0, 1], [], None, 3])),
                "text": f("A B", st.sampled_from(["", " "])),
                "speaker": f("s"), "alignment": f({"phone": [["a", 0.1, 0.2, None], {"symbol": "b"}]},
                                                  st.sampled_from([{"phone": [["a b", 0, 1]]}, {"phone": []}]))}

    kind = draw(st.sampled_from(["recording", "supervision", "cut"]))
    obj = rec if kind == "recording" else sup() if kind == "supervision" else {
        "id": f("c"), "start": f(0.0, st.floats(0, 1)), "duration": f(0.1, st.floats(0, 2)),
        "channel": f(0, st.just([0, 1])), "supervisions": f([sup() for _ in range(draw(st.integers(1, 2)))]),
        "recording": f(rec), "type": f("MonoCut", st.sampled_from(["MultiCut", "MixedCut", "x"]))}
    if not clean:
        for key in draw(st.lists(st.sampled_from(sorted(obj)), max_size=2)):
            obj.pop(key, None)
    return {"kind": kind, "obj": obj}


@pytest.fixture(scope="module")
def tiny_wav(scratch: Path) -> Path:
    import soundfile as sf

    path = scratch / "two_channels.wav"
    sf.write(path, np.full((1600, 2), 0.1, np.float32), 16000)
    return path


def _lines(objects: list[dict[str, Any]], kinds: tuple[str, ...]) -> bytes:
    return "".join(json.dumps(o["obj"]) + "\n" for o in objects if o["kind"] in kinds).encode()


@FUZZ
@given(data=st.data())
def test_lhotse_manifest_reader(scratch: Path, tiny_wav: Path, data: st.DataObject) -> None:
    import gzip

    from data_prep.lhotse_manifest import LhotseSource

    folder = scratch / "lhotse"
    for old in folder.glob("*"):
        old.unlink()
    folder.mkdir(exist_ok=True)
    objects = data.draw(st.lists(lhotse_objects(str(tiny_wav)), max_size=5))
    layout = data.draw(st.sampled_from(["cuts", "pair"]))
    files = {"cuts": _lines(objects, ("cut",))} if layout == "cuts" else \
        {"recordings": _lines(objects, ("recording",)), "supervisions": _lines(objects, ("supervision",))}
    for name, content in files.items():
        content = data.draw(st.just(content) | st.just(content) | st.binary(max_size=256)
                            | mutated(st.just(content), INTERESTING + [b"{", b"}", b"[]"]))
        gz = data.draw(st.booleans())
        write(folder, f"{name}_train.jsonl" + (".gz" if gz else ""), gzip.compress(content) if gz and
              data.draw(st.booleans()) else content)
    alignment = data.draw(st.sampled_from(["", "phone"]))
    src = LhotseSource(folder, units="phones" if alignment else "chars", alignment=alignment,
                       channel=data.draw(st.sampled_from([-1, 0, 1])))
    listing = parsed_or_own_error(src.listing, "train")
    if listing is not None:
        for u in listing.utterances:
            assert u.text.strip() and u.utt_id and u.speaker and u.path == str(tiny_wav)
            assert (u.start is None) == (u.end is None) and (u.start is None or 0 <= u.start < u.end)
            assert u.channels is None or all(c in (0, 1) for c in u.channels)
            wave = parsed_or_own_error(src.read, u.path, u.start, u.end, None, u.channels)
            assert wave is None or (wave.samples.ndim == 1 and wave.rate == 16000)


@pytest.fixture(scope="module")
def arrow_file() -> bytes:
    """A small table as ``save_to_disk`` writes it (Arrow IPC stream): audio {bytes, path} and text."""
    pa = pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install 'lstm-asr[hf]')")
    import soundfile as sf

    wav = io.BytesIO()
    sf.write(wav, np.zeros(800, np.float32), 16000, format="WAV")
    audio = pa.array([{"bytes": wav.getvalue(), "path": "a.wav"}, {"bytes": None, "path": "b.wav"}],
                     pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    table = pa.table({"audio": audio, "text": ["A B", "C"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@FUZZ
@given(data=st.data())
def test_hf_dataset_reader(scratch: Path, arrow_file: bytes, data: st.DataObject) -> None:
    from data_prep.hf_dataset import HfDatasetSource

    folder = scratch / "hf"
    (folder / "train").mkdir(parents=True, exist_ok=True)
    state = {"_data_files": [{"filename": "data-00000-of-00001.arrow"}], "_split": None}
    texts = {"dataset_dict.json": json.dumps({"splits": ["train"]}).encode(), "train/state.json":
             json.dumps(state).encode(), "train/data-00000-of-00001.arrow": arrow_file}
    broken = data.draw(st.sampled_from(["", *sorted(texts)]))  # "": all valid, so the reading is reached
    if broken:
        texts[broken] = data.draw(mutated(st.just(texts[broken]), INTERESTING + [b"{", b'"splits"', b"null"])
                                  | st.binary(max_size=512) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
    for name, content in texts.items():
        write(folder, name, content)
    src = HfDatasetSource(folder)
    listing = parsed_or_own_error(src.listing, "train", trace=False)  # pyarrow's allocations are not Python's
    if listing is not None:
        for u in listing.utterances[:2]:
            assert u.text.strip() and u.cell is not None
            wave = parsed_or_own_error(src.read, u.path, u.cell, trace=False)
            assert wave is None or wave.samples.ndim == 1


# --- what the fuzzer (and review) found: one fixed example each, so a regression fails fast and deterministically


def _inkml(points: str) -> bytes:
    return f"<ink><traceFormat><channel name='X'/><channel name='Y'/><channel name='T'/></traceFormat>" \
           f"<trace>{points}</trace></ink>".encode()


def _inkml_features(path: Path) -> np.ndarray:
    """What prep does with an InkML file: read it, then compute the features."""
    return featurize_ink(read_inkml(path), InkFeatureConfig())[0]


_BIG_ORDER = b"\\data\\\nngram 1000000000000=0\n\n\\1000000000000-grams:\n\n\\end\\\n"
_INF_BACKOFF = (b"\\data\\\nngram 1=2\nngram 2=1\n\n\\1-grams:\n-1\t<s>\tinf\n-inf\ta\n\n\\2-grams:\n-1\t<s> a\n"
                b"\n\\end\\\n")
FOUND = {
    # (reader, file name, content, part of the LstmAsrError message; None: it must parse)
    "xml-unknown-encoding": (read_strokes, "x.xml", b'<?xml version="1.0" encoding="bogus"?><a/>', "unknown encoding"),
    "ink-two-points": (_inkml_features, "x.inkml", _inkml("0 0 0, 1 1 1"), None),  # was 1e17 resampled points
    "ink-huge-times": (_inkml_features, "x.inkml", _inkml("0 0 0, 1 1 1e308, 2 0 -1e308"), "beyond"),
    "ink-huge-coordinates": (_inkml_features, "x.inkml", _inkml("1.7e308 0 0, 1.7e308 5 1, 1.6e308 1 2"), "beyond"),
    "arpa-huge-order": (read_arpa, "x.arpa", _BIG_ORDER, "are not 1.."),
    "arpa-5000-digit-count": (read_arpa, "x.arpa", b"\\data\\\nngram 1=" + b"9" * 5000 + b"\n", "expected"),
    "arpa-infinite-backoff": (read_arpa, "x.arpa", _INF_BACKOFF, "back-off weight"),
    "recipe-impossible-date": (load_recipe, "r.yaml", b"corpus: {path: c}\nmetadata: {d: 2021-02-30}", "invalid YAML"),
    "recipe-bad-tag": (load_recipe, "r.yaml", b"corpus: {path: c}\ntraining: {lr: !!float x}", "invalid YAML"),
    "recipe-deep-nesting": (load_recipe, "r.yaml", b"metadata: " + b"[" * 3000, "invalid YAML"),
    "recipe-nul-byte": (load_recipe, "r.yaml", b"\0", "invalid YAML (unacceptable character"),
    "recipe-newline-key": (load_recipe, "r.yaml", b'corpus: {path: c}\n"a\\nb": 1', "'a\\nb': unknown key"),
    "recipe-nan": (load_recipe, "r.yaml", b"corpus: {path: c}\ntraining: {lr: .nan}", "finite number"),
    "recipe-huge-float": (load_recipe, "r.yaml", b"corpus: {path: c}\ntraining: {lr: 0x" + b"f" * 300 + b"}",
                          "finite number"),
    "recipe-huge-int": (load_recipe, "r.yaml", b"corpus: {path: c}\nmodel: {hidden: 0x" + b"f" * 5000 + b"}",
                        "out of range"),
    "recipe-cyclic-metadata": (load_recipe, "r.yaml", b"corpus: {path: c}\nmetadata: {a: &a [*a]}", "too large"),
    "recipe-billion-laughs": (load_recipe, "r.yaml", b"corpus: {path: c}\nmetadata:\n a: &a [x, x, x, x, x, x, x, x]\n"
                              + b"".join(b" %c: &%c [%s]\n" % (c, c, b", ".join([b"*" + bytes([c - 1])] * 8))
                                         for c in b"bcdefghi"), "too large"),
    "recipe-date-metadata": (load_recipe, "r.yaml", b"corpus: {path: c}\nmetadata: {date: 2024-05-01}", None),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_cases(scratch: Path, case: str) -> None:
    read, name, content, message = FOUND[case]
    path = write(scratch, name, content)
    if message is None:
        got = parsed_or_own_error(read, path)
        assert got is not None
        if case.startswith("ink"):
            assert got.shape[1] == 5 and np.isfinite(got).all() and len(got) < 100
        else:  # the date became a string, so a checkpoint holding the recipe loads with weights_only
            assert got.metadata == {"date": "2024-05-01"}
            buf = io.BytesIO()
            torch.save(got.to_dict(), buf)
            buf.seek(0)
            assert torch.load(buf, weights_only=True)["metadata"] == {"date": "2024-05-01"}
    else:
        with pytest.raises(LstmAsrError) as err:
            with _alarm(HANG_SECONDS):
                read(path)
        assert message in str(err.value) and "\n" not in str(err.value)
