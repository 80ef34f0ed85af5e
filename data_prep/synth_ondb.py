"""A generated online-handwriting corpus in IAM-OnDB's layout, from Hershey single-stroke fonts.

``lstm-asr synth ondb OUT [--lines N] [--seed S]`` writes ``lineStrokes/`` XML, ``ascii/`` transcriptions, the
four split files and ``writers.txt``. Every writer has a style of its own (``/work/shared/reference/tts/ENGINES.md``,
last section): slant, size, width, letter and word spacing, smooth correlated jitter, baseline drift, a small
rotation, letters joined within words (or not), i-dots, j-dots, t-bars and x-crossings written at the end of the
word, speed that slows in curves, pen-up pauses of 80-250 ms, and sampling at 100-200 Hz. Writers are disjoint
across train, validation and test. Text lines come from the package's sentence pool (``text_pool``), cut into
lines of a few words. The same seed gives the same corpus, byte for byte.

Needs the ``hershey-fonts`` package (``pip install 'lstm-asr[ink]'``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from data_prep.ink import Ink
from lstm_asr.errors import LstmAsrError

from .iam_ondb import SPLIT_FILES, write_strokes, write_transcription

SETTINGS_FILE = ".synth_settings.json"
LINES_PER_FORM = 8
WRITER_SHARES = (0.7, 0.15, 0.15)  # train / validation / test writers
DELAYED = {"i": (0,), "j": (0,), "t": (2,), "x": (1,)}  # glyph strokes written at the end of the word
FONT = "scripts"  # Hershey's single-stroke script: pen-like, joins within words


@lru_cache(maxsize=2)
def _font(name: str = FONT):
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:
        raise LstmAsrError("synth ondb needs the hershey-fonts package (pip install 'lstm-asr[ink]')") from None
    font = HersheyFonts()
    font.load_default_font(name)
    return font


@dataclass
class WriterStyle:
    """One writer's hand. Lengths are in Hershey font units (x-height 9) unless said otherwise."""

    scale: float  # whiteboard units per font unit
    slant: float  # shear: x += slant * height above the baseline
    width: float  # horizontal stretch
    letter_gap: float
    word_gap: float
    jitter: float  # amplitude of the smooth positional noise
    drift: float  # baseline drift amplitude
    rotation: float  # radians, per line around its start (plus a little per line)
    join: bool  # letters of a word in one pen-down trace
    speed: float  # font units per second on straight lines
    curve_slowdown: float
    rate_hz: float
    pause: tuple[float, float]  # pen-up pause range, seconds

    @classmethod
    def draw(cls, rng: np.random.Generator) -> WriterStyle:
        return cls(scale=float(rng.uniform(4.0, 7.0)), slant=float(rng.uniform(-0.1, 0.45)),
                   width=float(rng.uniform(0.85, 1.2)), letter_gap=float(rng.uniform(-1.0, 2.0)),
                   word_gap=float(rng.uniform(7.0, 14.0)), jitter=float(rng.uniform(0.2, 0.8)),
                   drift=float(rng.uniform(0.0, 2.5)), rotation=float(rng.uniform(-0.04, 0.04)),
                   join=bool(rng.random() < 0.8), speed=float(rng.uniform(600, 900)),
                   curve_slowdown=float(rng.uniform(0.5, 2.0)), rate_hz=float(rng.uniform(100, 200)),
                   pause=(0.08, float(rng.uniform(0.12, 0.25))))


def _smooth_noise(rng: np.random.Generator, n: int, scale: float, corr: int = 25) -> np.ndarray:
    """Correlated noise (n, 2): white noise low-passed with a moving average of ``corr`` points."""
    white = rng.normal(size=(n + corr, 2))
    kernel = np.ones(corr) / np.sqrt(corr)
    return scale * np.stack([np.convolve(white[:, k], kernel, mode="valid")[:n] for k in range(2)], axis=1)


def _densify(poly: np.ndarray, step: float = 0.5) -> np.ndarray:
    """Points every ``step`` font units along a polyline (the fonts' points are corners, far apart)."""
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poly, axis=0).T))])
    if arc[-1] == 0:
        return poly[:1]
    at = np.linspace(0, arc[-1], max(int(arc[-1] / step), 1) + 1)
    return np.column_stack([np.interp(at, arc, poly[:, 0]), np.interp(at, arc, poly[:, 1])])


def layout_line(text: str, style: WriterStyle, rng: np.random.Generator) -> list[np.ndarray]:
    """Pen-down traces (font units, y down, baseline at 0) of one text line, in writing order."""
    font = _font()
    traces: list[np.ndarray] = []
    x = 0.0
    for word in text.split(" "):
        current: list[np.ndarray] = []  # the word's joined trace, piece by piece
        delayed: list[np.ndarray] = []
        for ch in word:
            glyph = font.all_glyphs.get(ch)
            if glyph is None:
                raise LstmAsrError(f"character {ch!r} has no glyph in the Hershey {FONT} font")
            grow = float(rng.normal(1.0, 0.04))
            x_off = x - glyph.left_offset * style.width * grow
            dy = float(rng.normal(0, 0.4))
            for k, stroke in enumerate(glyph.strokes):
                pts = np.asarray(stroke, dtype=np.float64)
                pts = np.column_stack([x_off + pts[:, 0] * style.width * grow, (pts[:, 1] - 9.0) * grow + dy])
                if k in DELAYED.get(ch, ()):
                    delayed.append(pts)
                elif style.join and ch.isalpha() and ch.islower() and current:
                    current.append(pts)  # pen stays down: the straight link is drawn by the concatenation
                else:
                    if current:
                        traces.append(np.concatenate(current))
                    current = [pts]
            x += glyph.char_width * style.width * grow + style.letter_gap
            if not (style.join and ch.isalpha()):
                if current:
                    traces.append(np.concatenate(current))
                current = []
        if current:
            traces.append(np.concatenate(current))
        traces.extend(delayed)
        x += style.word_gap
    return traces


def write_line(text: str, style: WriterStyle, rng: np.random.Generator, start: tuple[float, float, float]) -> Ink:
    """The strokes of one line as a whiteboard would record them: integer coordinates, times in seconds."""
    traces = [_densify(t) for t in layout_line(text, style, rng)]
    lengths = [len(t) for t in traces]
    pts = np.concatenate(traces)
    height = -pts[:, 1]  # above the baseline
    pts[:, 0] += style.slant * height
    width = max(float(np.ptp(pts[:, 0])), 1.0)
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.5) * width
    pts[:, 1] += style.drift * np.sin(2 * np.pi * pts[:, 0] / period + phase)
    angle = style.rotation + float(rng.normal(0, 0.01))
    c, s = np.cos(angle), np.sin(angle)
    pts = pts @ np.array([[c, s], [-s, c]])
    pts += _smooth_noise(rng, len(pts), style.jitter)
    strokes, t0 = [], start[2]
    for trace in np.split(pts, np.cumsum(lengths)[:-1]):
        seg = np.hypot(*np.diff(trace, axis=0).T)
        # Curvature from the turning angle between consecutive segments: the pen slows where the line bends.
        turn = np.zeros(len(seg))
        if len(seg) > 1:
            v = np.diff(trace, axis=0)
            cross = v[:-1, 0] * v[1:, 1] - v[:-1, 1] * v[1:, 0]
            turn[1:] = np.abs(np.arctan2(cross, (v[:-1] * v[1:]).sum(1)))
        dt = seg / style.speed * (1 + style.curve_slowdown * np.minimum(turn / 0.3, 3.0))
        times = np.concatenate([[0.0], np.cumsum(dt)])
        n = max(int(times[-1] * style.rate_hz), 1) + 1
        at = np.linspace(0, times[-1], n) if times[-1] > 0 else np.zeros(1)
        xy = np.column_stack([np.interp(at, times, trace[:, 0]), np.interp(at, times, trace[:, 1])])
        xy = np.round(xy * style.scale + np.asarray(start[:2]))
        t = np.round(t0 + np.arange(len(xy)) / style.rate_hz, 3)
        strokes.append(np.column_stack([xy, t]))
        t0 = float(t[-1]) + float(rng.uniform(*style.pause))
    return Ink(strokes)


def text_lines(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` lines of 3-6 words cut from the sentence pool, in a seeded order."""
    from .text_pool import load_pool

    pool = load_pool()
    out: list[str] = []
    for i in rng.permutation(len(pool)):
        words = pool[int(i)].split()
        while words and len(out) < count:
            n = int(rng.integers(3, 7))
            out.append(" ".join(words[:n]))
            words = words[n:]
        if len(out) >= count:
            break
    return out


def corpus_is_complete(root: Path) -> bool:
    return (Path(root) / SETTINGS_FILE).is_file()


def generate_ondb_corpus(out: str | Path, lines: int = 600, seed: int = 0, progress: bool = True) -> str:
    """Write a generated IAM-OnDB-layout corpus of about ``lines`` text lines; returns a one-line summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if lines < 3 * LINES_PER_FORM:
        raise LstmAsrError(f"--lines must be at least {3 * LINES_PER_FORM} (one form per split)")
    out = Path(out)
    rng = np.random.default_rng(seed)
    n_forms = lines // LINES_PER_FORM
    n_writers = max(3, n_forms // 2)  # two forms per writer, as IAM-OnDB has a few forms per writer
    n_train = max(1, int(round(n_writers * WRITER_SHARES[0])))
    n_dev = max(1, int(round(n_writers * WRITER_SHARES[1])))
    n_train = min(n_train, n_writers - n_dev - 1)
    roles = ["train"] * n_train + ["dev"] * n_dev + ["test"] * (n_writers - n_train - n_dev)
    styles = [WriterStyle.draw(np.random.default_rng([seed, w])) for w in range(n_writers)]
    texts = text_lines(n_forms * LINES_PER_FORM, rng)
    split_forms: dict[str, list[str]] = {name: [] for name in SPLIT_FILES}
    writers = []
    with Progress(TextColumn("synth ondb"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not progress) as bar:
        task = bar.add_task("lines", total=n_forms * LINES_PER_FORM)
        for f in range(n_forms):
            w = f % n_writers
            wrng = np.random.default_rng([seed, w, f])
            folder = f"g{w:02d}"
            form = f"{folder}-{f:03d}"
            form_id = f"{form}a"
            d = out / "lineStrokes" / folder / form
            d.mkdir(parents=True, exist_ok=True)
            form_lines = texts[f * LINES_PER_FORM : (f + 1) * LINES_PER_FORM]
            clock = float(wrng.uniform(100, 1000))
            for k, text in enumerate(form_lines, 1):
                start = (float(wrng.uniform(800, 1200)), float(wrng.uniform(900, 1100)), clock)
                ink = write_line(text, styles[w], wrng, start)
                write_strokes(d / f"{form_id}-{k:02d}.xml", ink)
                clock = float(ink.strokes[-1][-1, 2]) + float(wrng.uniform(1, 3))
                bar.advance(task)
            a = out / "ascii" / folder / form
            a.mkdir(parents=True, exist_ok=True)
            write_transcription(a / f"{form_id}.txt", form_id, form_lines)
            split_forms[roles[w]].append(form_id)
            writers.append(f"{form_id} writer{w:03d}")
    # Validation 2 (testset_t) gets the validation writers' forms too: its role is the official one, unused here.
    split_forms["dev2"] = list(split_forms["dev"])
    for name, file in SPLIT_FILES.items():
        (out / file).write_text("".join(f + "\n" for f in split_forms[name]))
    (out / "writers.txt").write_text("\n".join(writers) + "\n")
    settings = {"lines": n_forms * LINES_PER_FORM, "seed": seed, "writers": n_writers,
                "writers_per_split": {r: roles.count(r) for r in ("train", "dev", "test")},
                "styles": [asdict(s) for s in styles]}
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")
    return (f"wrote {n_forms * LINES_PER_FORM} lines ({n_forms} forms) by {n_writers} writers "
            f"({roles.count('train')} train / {roles.count('dev')} validation / {roles.count('test')} test) to {out}")
