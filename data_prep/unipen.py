"""UNIPEN (``train_r01_v07``): the ``.KEYWORD`` pen-data format, its segment labels, and the ``unipen`` corpus source.

Layout of the distribution (Guyon et al., ICPR 1994; re-released on Zenodo under CC BY 4.0, doi
10.5281/zenodo.1195803)::

    data/<category>/<site>/.../<name>.dat    index files: .INCLUDE lines and .SEGMENT labels over the pen data
    include/<site>/.../<name>.dat|.doc       pen data (.PEN_DOWN/.PEN_UP point blocks) and device/writer headers

Categories: 1a-1d isolated characters, 2-3 characters in context, 6 cursive words, 7 mixed-style words, 8 free
text. **Category 8 is the project's held-out evaluation set: nothing here reads it unless a recipe names it.**

The format, as this reader takes it:

- A line starting with ``.`` and a letter opens a keyword; its arguments run up to the next keyword line. Unknown
  keywords are ignored (counted), as the format allows sites to define their own.
- ``.INCLUDE <file>`` splices a file in place, relative to the ``include/`` folder (nested includes too; a
  missing one makes the index file unusable: it is skipped and counted, never a crash).
- Components are the ``.PEN_DOWN`` and ``.PEN_UP`` blocks that hold points, numbered from 0 over the whole
  spliced stream. A block without points only marks the pen event (apd writes an empty ``.PEN_UP`` after every
  trace) and is not counted: with it counted, abm's and apd's segments cover the wrong ink (checked by rendering
  abm's ``ca0`` words and apd's, where only this rule gives the labelled word). ``.START_SET`` and
  ``.START_BOX`` do not restart the numbering: in this distribution every segment's components fit the running
  count (``nic/eelco05``'s last word ends at its last component). ``.DT <ms>`` is the pause before the next
  component.
- ``.SEGMENT <level> <delineation> [<quality>] ["<label>"]``: delineation ``0-4``, ``7``, ``3:1-5:2``
  (component:point, 0-based, ends inclusive) and comma lists of these. Quality GOOD/OK/BAD/``?`` or missing.
  Labels are double-quoted with backslash escapes (``\\"``, ``\\\\``, ``\\n``, ``\\t``); ``\\@`` (kai's
  character-boundary mark) is dropped.
- ``.COORD`` names the point columns (``X Y``, ``X Y T``, ``X Y P`` ...; T in milliseconds); without T, points are
  timed by ``.POINTS_PER_SECOND`` over every recorded sample (pen-up ones too) plus ``.DT`` pauses.
  ``.X_POINTS_PER_INCH`` / ``.X_POINTS_PER_MM`` (and Y) give the resolution, kept on the :class:`Ink` for the
  features' resolution normalisation.
- UNIPEN's y axis points up; :class:`Ink`'s points down, so y is negated on reading (``lstm-asr render`` shows the
  words upright).
- Pen-up blocks are not strokes: a word's ink is its pen-down traces. So a site that records pen-up movement and
  one that does not give the same strokes; the features treat the jump between strokes alike for both (see
  ``features.ink_pen_up_time``).

Items: one labelled segment of the chosen level (default WORD) per item, from the chosen categories (default 6
and 7), sites and writers; the same segment listed in two categories (cat 6 and 7 share some index files) is kept
once. Splits: UNIPEN has none, so :func:`writer_role` hashes each writer into train/dev/test by fractions (writer
disjoint, deterministic), and ``test_sites`` holds whole sites out as a new-device test split. English and
non-English sites are told apart by :data:`NON_ENGLISH_SITES`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_prep.ink import Ink
from data_prep.sources import CorpusItem, SplitItems, register_source
from data_prep.units import WORD_SEP, CharUnits, FittedOnTrainingText, ScoredAsCharacters, UnitError
from lstm_asr.errors import CorpusError

DEFAULT_RATE_HZ = 100.0  # when a file names no .POINTS_PER_SECOND and has no T column
MAX_INCLUDE_DEPTH = 8  # deeper nesting is a loop (a file including itself) or not UNIPEN
MAX_POINT_VALUE = 1e12  # pen coordinates are at most tens of thousands; T in ms since some epoch ~1e9

# Sites whose labels are not English words, decided by reading a sample of every site's category 6 and 7 labels
# (``grep '^.SEGMENT' data/6/<site>`` ...): abm writes German city names (Aachen, Braunschweig), sie German words
# (Mittwoch, Geburtstag). Every other site writes English words; nic's lexicon has a handful of loans ("zwei",
# "angst") and lav writes random letter strings (English letters, no words): both count as English here.
NON_ENGLISH_SITES: dict[str, str] = {"abm": "de", "sie": "de"}

QUALITIES = ("GOOD", "OK", "BAD", "?", "")
_KEYWORD = re.compile(r"^\.(?=[A-Za-z_])", re.M)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPE = re.compile(r"\\(.)", re.S)
_ESCAPES = {"n": " ", "t": " ", "@": ""}


CHARSETS = {"ascii": frozenset(chr(c) for c in range(0x21, 0x7F)) - {WORD_SEP}}


def outside_charset(label: str, charset: str) -> str:
    """The first character of ``label`` outside the named character set ("" when none is, or no set is named).
    ``|`` is always outside: character units use it for the space between words (att writes it as a word)."""
    allowed = CHARSETS.get(charset)
    if allowed is None:
        return WORD_SEP if WORD_SEP in label else ""
    return next((c for c in label if c != " " and c not in allowed), "")


def site_language(site: str) -> str:
    """``en`` or the language of a non-English site (:data:`NON_ENGLISH_SITES`)."""
    return NON_ENGLISH_SITES.get(site, "en")


# --- the .KEYWORD format ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One ``.SEGMENT``: hierarchy level, delineation (component[:point] ranges), quality, label."""

    level: str
    delineation: str
    quality: str
    label: str


@dataclass
class Component:
    """One ``.PEN_DOWN`` or ``.PEN_UP`` block: (n, 3) points x, y (y up, as recorded), t seconds."""

    pen_down: bool
    points: np.ndarray


@dataclass
class Device:
    """Resolution and rate in force for a component (0 = not stated)."""

    x_per_inch: float = 0.0
    y_per_inch: float = 0.0
    points_per_second: float = 0.0


@dataclass
class UnipenDocument:
    """An index file with its includes spliced in: components, the segments over them, writer, counts."""

    path: Path
    components: list[Component] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)  # per component
    segments: list[Segment] = field(default_factory=list)
    writer: str = ""
    includes: list[str] = field(default_factory=list)
    oddities: Counter = field(default_factory=Counter)  # unknown keywords, malformed point lines, ...


def unescape_label(raw: str) -> str:
    """A label's text: backslash escapes resolved (``\\@`` dropped), whitespace runs made one space."""
    return " ".join(_ESCAPE.sub(lambda m: _ESCAPES.get(m[1], m[1]), raw).split())


def parse_segment(args: str, path: Path) -> Segment:
    """``WORD 0-4 GOOD "Aachen"`` -> Segment. A missing quality is ``""``; a missing label is ``""``."""
    head, quote, rest = args.partition('"')
    fields = head.split()
    if len(fields) < 2:
        raise CorpusError(path, f".SEGMENT needs a level and components, got {args.strip()[:60]!r}")
    label = ""
    if quote:
        # The label runs to the last unescaped quote (a label may hold \" and, the format says, line breaks).
        m = re.match(r'((?:[^"\\]|\\.)*)"', rest, re.S)
        label = unescape_label(m[1] if m else rest)
    return Segment(fields[0].upper(), fields[1], fields[2].upper() if len(fields) > 2 else "", label)


def _parse_point(text: str, path: Path) -> tuple[int, int | None]:
    comp, _, point = text.partition(":")
    try:
        return int(comp), (int(point) if point else None)
    except ValueError:
        raise CorpusError(path, f"bad component reference {text!r} in a .SEGMENT") from None


def parse_delineation(text: str, path: Path) -> list[tuple[int, int | None, int, int | None]]:
    """``0-4``, ``7``, ``3:1-5:2``, ``1,3-4`` -> [(first component, first point or None, last component, last
    point or None)]; None means the whole component (from its start / to its end)."""
    parts = []
    for piece in text.split(","):
        if not piece:
            continue
        a, dash, b = piece.partition("-")
        c0, p0 = _parse_point(a, path)
        c1, p1 = _parse_point(b, path) if dash else (c0, p0 if p0 is not None else None)
        if not dash and p0 is not None:  # "3:5" alone: one point
            p1 = p0
        if c0 < 0 or c1 < c0:
            raise CorpusError(path, f"bad component range {piece!r} in a .SEGMENT")
        parts.append((c0, p0, c1, p1))
    if not parts:
        raise CorpusError(path, "a .SEGMENT without components")
    return parts


def _number(text: str, key: str, path: Path) -> float:
    try:
        value = float(text.split()[0])
    except (ValueError, IndexError):
        raise CorpusError(path, f".{key} {text.strip()[:30]!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise CorpusError(path, f".{key} {value!r} is not a positive number")
    return value


def _points(block: str, columns: list[str], path: Path, oddities: Counter) -> np.ndarray:
    """The numbers of a point block as rows of ``len(columns)``. Fast path: one split of the whole block; lines
    with too few numbers (a damaged line) are dropped and counted."""
    ncol = len(columns)
    try:
        flat = np.array(block.split(), dtype=np.float64)
    except ValueError:
        flat = None
    if flat is not None and flat.size % ncol == 0:
        rows = flat.reshape(-1, ncol)
    else:  # a line with a stray token or a missing column: line by line
        good = []
        for line in block.splitlines():
            try:
                vals = [float(v) for v in line.split()]
            except ValueError:
                vals = []
            if len(vals) >= ncol:
                good.append(vals[:ncol])
            elif line.strip():
                oddities["malformed point line"] += 1
        rows = np.asarray(good, dtype=np.float64).reshape(-1, ncol)
    if rows.size and not np.all(np.abs(rows) < MAX_POINT_VALUE):  # NaN too
        raise CorpusError(path, "point values out of range (not pen data)")
    return rows


class _Reader:
    """Splices an index file and its includes into one :class:`UnipenDocument`."""

    def __init__(self, include_dir: Path) -> None:
        self.include_dir = include_dir
        self.columns = ["X", "Y"]
        self.device = Device()
        self.clock = 0.0  # seconds: the time of the next sample when the data has no T column
        self.pending_dt = 0.0

    def read(self, path: Path, doc: UnipenDocument, depth: int = 0) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise CorpusError(path, f"includes nested deeper than {MAX_INCLUDE_DEPTH} (a loop?)")
        try:
            text = path.read_bytes().decode("iso-8859-1")  # 1990s files: any byte is a character
        except FileNotFoundError:
            raise CorpusError(path, "file not found") from None
        except OSError as exc:
            raise CorpusError(path, f"cannot read ({exc.strerror or exc})") from None
        for block in _KEYWORD.split(text)[1:]:  # what precedes the first keyword is not data
            m = _NAME.match(block)
            if not m:
                continue
            self.keyword(m[0].upper(), block[m.end():], path, doc, depth)

    def keyword(self, key: str, args: str, path: Path, doc: UnipenDocument, depth: int) -> None:
        if key in ("PEN_DOWN", "PEN_UP"):
            rows = _points(args, self.columns, path, doc.oddities)
            pts = np.zeros((len(rows), 3))
            cols = {c: i for i, c in enumerate(self.columns)}
            pts[:, 0] = rows[:, cols["X"]]
            pts[:, 1] = rows[:, cols["Y"]]
            if "T" in cols:
                pts[:, 2] = rows[:, cols["T"]] / 1000.0  # UNIPEN's T is in milliseconds
            else:
                rate = self.device.points_per_second or DEFAULT_RATE_HZ
                self.clock += self.pending_dt
                pts[:, 2] = self.clock + np.arange(len(rows)) / rate
                self.clock += len(rows) / rate
            self.pending_dt = 0.0
            if not len(pts):  # a bare .PEN_UP / .PEN_DOWN marks a pen event and is no component (see above)
                doc.oddities["empty pen block"] += 1
                return
            doc.components.append(Component(key == "PEN_DOWN", pts))
            doc.devices.append(self.device)
        elif key == "DT":
            self.pending_dt += _number(args, key, path) / 1000.0
        elif key == "INCLUDE":
            name = args.split()[0] if args.split() else ""
            if not name:
                raise CorpusError(path, ".INCLUDE without a file name")
            if Path(name).is_absolute() or ".." in Path(name).parts or "\0" in name:
                raise CorpusError(path, f".INCLUDE {name[:60]!r} is not a file inside the include folder")
            target = self.include_dir / name
            doc.includes.append(name)
            try:
                found = target.is_file()
            except (OSError, ValueError):
                found = False
            if not found:
                raise CorpusError(path, f"include file {name} missing")
            self.read(target, doc, depth + 1)
        elif key == "SEGMENT":
            doc.segments.append(parse_segment(args, path))
        elif key == "COORD":
            cols = [c.upper() for c in args.split()]
            if "X" not in cols or "Y" not in cols or len(set(cols)) != len(cols):
                raise CorpusError(path, f".COORD {args.strip()[:40]!r} has no X and Y (or repeats a column)")
            self.columns = cols
        elif key in ("X_POINTS_PER_INCH", "Y_POINTS_PER_INCH", "X_POINTS_PER_MM", "Y_POINTS_PER_MM",
                     "POINTS_PER_SECOND"):
            value = _number(args, key, path)
            d = self.device
            if key == "POINTS_PER_SECOND":
                self.device = Device(d.x_per_inch, d.y_per_inch, value)
            else:
                per_inch = value * 25.4 if key.endswith("_MM") else value
                self.device = Device(per_inch, d.y_per_inch, d.points_per_second) if key[0] == "X" \
                    else Device(d.x_per_inch, per_inch, d.points_per_second)
        elif key == "WRITER_ID":
            doc.writer = args.split()[0] if args.split() else doc.writer
        elif key not in _KNOWN_IGNORED:
            doc.oddities[f"unknown keyword .{key}"] += 1


# Keywords that carry nothing the recogniser needs (documentation, layout, writer facts, lexica).
_KNOWN_IGNORED = frozenset("""
VERSION COMMENT RESERVE KEYWORD HIERARCHY START_SET START_BOX DATA_SOURCE DATA_ID DATA_CONTACT DATA_INFO SETUP PAD
ALPHABET ALPHABET_FREQ LEXICON LEXICON_ID LEXICON_SOURCE LEXICON_CONTACT LEXICON_INFO LEXICON_FREQ STYLE DATE HAND
SKILL COUNTRY AGE SEX WRITER_INFO X_DIM Y_DIM H_LINE V_LINE POINTS_PER_GRAM Z_POINTS_PER_INCH""".split())


def read_document(path: str | Path, include_dir: str | Path) -> UnipenDocument:
    """Parse a UNIPEN file with its ``.INCLUDE`` s (relative to ``include_dir``). Any problem is a one-line
    ``CorpusError`` naming the file."""
    path = Path(path)
    doc = UnipenDocument(path)
    try:
        _Reader(Path(include_dir)).read(path, doc)
    except RecursionError:
        raise CorpusError(path, "includes nested too deeply") from None
    return doc


def segment_ink(doc: UnipenDocument, segment: Segment) -> Ink:
    """The pen-down strokes a segment covers, y flipped to point down, with the device's resolution and rate.

    Pen-up components inside the range are left out (they are pen movement, not ink). A range past the last
    component is a ``CorpusError``."""
    strokes = []
    device: Device | None = None
    for c0, p0, c1, p1 in parse_delineation(segment.delineation, doc.path):
        if c1 >= len(doc.components):
            # The message is the same for every such segment: prep counts skips by their reason.
            raise CorpusError(doc.path, "segment reaches past the last component")
        for c in range(c0, c1 + 1):
            comp = doc.components[c]
            device = device or doc.devices[c]
            if not comp.pen_down:
                continue
            lo = p0 if (c == c0 and p0 is not None) else 0
            hi = p1 + 1 if (c == c1 and p1 is not None) else len(comp.points)
            pts = comp.points[lo:hi].copy()
            if len(pts):
                pts[:, 1] = -pts[:, 1]
                strokes.append(pts)
    if not strokes:
        raise CorpusError(doc.path, "segment has no pen-down points")
    device = device or Device()
    return Ink(strokes, x_per_inch=device.x_per_inch, y_per_inch=device.y_per_inch,
               points_per_second=device.points_per_second)


# Parsed documents of the current worker process: prep reads a file's segments one item at a time, in order.
_CACHE: OrderedDict[tuple[str, str, int, int], UnipenDocument] = OrderedDict()
_CACHE_SIZE = 8


def cached_document(path: str | Path, include_dir: str | Path) -> UnipenDocument:
    """:func:`read_document`, remembered (by path, size and modification time) for the next segments."""
    try:
        st = Path(path).stat()
        stamp = (st.st_size, st.st_mtime_ns)
    except (OSError, ValueError):
        stamp = (-1, -1)
    key = (str(path), str(include_dir), *stamp)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    doc = read_document(path, include_dir)
    _CACHE[key] = doc
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return doc


def include_dir_for(index_file: Path) -> Path:
    """``<root>/include`` for ``<root>/data/<category>/<site>/.../x.dat`` (else the file's own folder)."""
    for parent in index_file.parents:
        if parent.name == "data" and (parent.parent / "include").is_dir():
            return parent.parent / "include"
    return index_file.parent


def read_unipen(path: str | Path, part: str | None = None) -> tuple[Ink, str]:
    """The ink and label of one segment of a UNIPEN file: ``part`` is the segment's delineation (``0-4``), its
    0-based number among the file's segments (``@3``), a line of words (``line:...``, see :func:`line_ink`), or
    None for the first segment. A file name may carry the part after ``#`` (``ca0.dat#0-4``, ``ca0.dat#@3``), as
    ``render`` and ``decode`` take it."""
    path_text = str(path)
    if part is None and "#" in path_text and not Path(path_text).exists():
        path_text, part = path_text.rsplit("#", 1)
    path = Path(path_text)
    include_dir = include_dir_for(path.resolve())
    if part and part.startswith("line:"):
        return line_ink(path, include_dir, part)
    doc = cached_document(path, include_dir)
    if not doc.segments:
        raise CorpusError(path, "no .SEGMENT in the file")
    if part is None:
        seg = doc.segments[0]
    elif part.startswith("@"):
        try:
            idx = int(part[1:])
        except ValueError:
            raise CorpusError(path, f"segment number {part!r} is not a number") from None
        if not 0 <= idx < len(doc.segments):
            raise CorpusError(path, f"segment #{idx}: the file has {len(doc.segments)}")
        seg = doc.segments[idx]
    else:
        found = [s for s in doc.segments if s.delineation == part]
        seg = found[0] if found else Segment("WORD", part, "", "")
    return segment_ink(doc, seg), seg.label


def looks_like_unipen(path: str | Path) -> bool:
    """Whether a file (maybe with ``#part``) is UNIPEN: its first non-blank character is a ``.`` keyword."""
    text = str(path)
    if "#" in text and not Path(text).exists():
        text = text.rsplit("#", 1)[0]
    try:
        with open(text, "rb") as f:
            head = f.read(256).lstrip()
    except OSError:
        return False
    return bool(re.match(rb"\.[A-Z_]+", head))


# --- lines from words ---------------------------------------------------------------------------------------------


def _core_band(strokes: list[np.ndarray]) -> tuple[float, float]:
    """The 20-80% y band of a word's ink (its core, x-height, band; ascenders and descenders are rarer)."""
    y = np.concatenate([s[:, 1] for s in strokes])
    lo, hi = np.percentile(y, [20, 80])
    return float(lo), float(hi)


MIN_GAP = 0.25  # core heights: a closer pair is not taken as side by side (the space must show)


def line_ink(path: Path, include_dir: Path, part: str, default_gap: float = 0.8) -> tuple[Ink, str]:
    """A text line assembled from word segments of one writer: ``line:<delineation>|<delineation>|...`` (segments
    of ``path`` in writing order).

    Two consecutive words that the writer wrote side by side (the next starts right of the previous, at least
    :data:`MIN_GAP` and at most 3 core heights from it, their core bands overlapping) keep their own gap: that is
    the writer's natural spacing. Words written elsewhere (one per box or line) are moved beside the previous word,
    core bands aligned, at the median natural gap of this line (``default_gap`` core heights when none was seen).
    Times are shifted so each word follows the previous one."""
    doc = cached_document(path, include_dir)
    words = []
    for delin in part.removeprefix("line:").split("|"):
        found = [s for s in doc.segments if s.delineation == delin]
        if not found:
            raise CorpusError(path, f"line part {delin!r} is not a segment of the file")
        words.append((segment_ink(doc, found[0]), found[0].label))
    bands = [_core_band(ink.strokes) for ink, _ in words]
    height = float(np.median([hi - lo for lo, hi in bands])) or 1.0
    boxes = [(min(s[:, 0].min() for s in ink.strokes), max(s[:, 0].max() for s in ink.strokes)) for ink, _ in words]
    natural = []
    for k in range(1, len(words)):
        gap = boxes[k][0] - boxes[k - 1][1]
        (lo0, hi0), (lo1, hi1) = bands[k - 1], bands[k]
        if MIN_GAP * height <= gap <= 3 * height and min(hi0, hi1) > max(lo0, lo1):
            natural.append(gap)
    gap_default = float(np.median(natural)) if natural else default_gap * height
    strokes: list[np.ndarray] = []
    prev_right, prev_mid, t_end = 0.0, 0.0, 0.0
    for k, (ink, _) in enumerate(words):
        dx = dy = 0.0
        if k:
            gap = boxes[k][0] - boxes[k - 1][1]
            (lo0, hi0), (lo1, hi1) = bands[k - 1], bands[k]
            if not (MIN_GAP * height <= gap <= 3 * height and min(hi0, hi1) > max(lo0, lo1)):
                dx = prev_right + gap_default - boxes[k][0]
                dy = prev_mid - (lo1 + hi1) / 2
        t0 = ink.strokes[0][0, 2]
        dt = (t_end + 0.3 - t0) if k else -t0  # a third of a second between words
        for s in ink.strokes:
            strokes.append(s + np.array([dx, dy, dt]))
        prev_right = boxes[k][1] + dx
        prev_mid = (bands[k][0] + bands[k][1]) / 2 + dy
        t_end = strokes[-1][-1, 2]
    first = words[0][0]
    return Ink(strokes, x_per_inch=first.x_per_inch, y_per_inch=first.y_per_inch,
               points_per_second=first.points_per_second), " ".join(label for _, label in words)


# --- the corpus source ---------------------------------------------------------------------------------------------


def writer_role(writer: str, dev_fraction: float, test_fraction: float, salt: str = "") -> str:
    """``train``, ``dev`` or ``test`` for a writer: a deterministic hash of its id (not Python's salted hash())
    placed on [0, 1), so every run and machine makes the same writer-disjoint split."""
    h = int.from_bytes(hashlib.sha256(f"{salt}{writer}".encode()).digest()[:8], "big") / 2.0**64
    if h < test_fraction:
        return "test"
    if h < test_fraction + dev_fraction:
        return "dev"
    return "train"


@dataclass(frozen=True)
class UnipenOptions:
    """What to take from the corpus (the recipe's ``corpus.unipen`` section has the same keys)."""

    categories: tuple[str, ...] = ("6", "7")
    sites: tuple[str, ...] = ()  # empty: every site
    exclude_sites: tuple[str, ...] = ()
    writers: tuple[str, ...] = ()  # "site/writer-id"; empty: every writer
    level: str = "WORD"
    qualities: tuple[str, ...] = ("GOOD", "OK", "?", "")  # "" = no quality given; BAD is left out by default
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    salt: str = ""  # changes the writer hash: another writer-disjoint split of the same sizes
    test_sites: tuple[str, ...] = ()  # held out whole (split "site_test"): a device no training item comes from
    language: str = ""  # "": every site; "en": English sites; "other": non-English sites
    lines_from_words: int = 0  # > 0: training adds lines of up to this many words of one writer
    line_words_min: int = 2
    charset: str = ""  # "": the training labels' characters; "ascii": printable ASCII only, others skipped

    @classmethod
    def from_section(cls, section) -> UnipenOptions:
        if section is None:
            return cls()
        kw = {}
        for name in cls.__dataclass_fields__:
            if hasattr(section, name):
                value = getattr(section, name)
                kw[name] = tuple(str(v) for v in value) if isinstance(value, list | tuple) else value
        return cls(**kw)


@dataclass
class Listing:
    """Labelled segments of the whole selection, with the role of each, and what was skipped (file, reason)."""

    rows: list[tuple[str, str, str, Path, Segment, str]]  # utt id, site, writer key, index file, segment, role
    skipped: list[tuple[str, str]]
    oddities: Counter
    missing_includes: set[str]


def _writer_of(include_dir: Path, includes: Iterable[str], fallback: str, cache: dict[str, str]) -> str:
    """The ``.WRITER_ID`` of an index file's includes (its headers only are scanned, not the points)."""
    for name in includes:
        if name not in cache:
            cache[name] = ""
            try:
                with open(include_dir / name, "rb") as f:
                    text = f.read().decode("iso-8859-1")
            except OSError:
                continue
            m = re.search(r"^\.WRITER_ID[ \t]+(\S+)", text, re.M)
            cache[name] = m[1] if m else ""
        if cache[name]:
            return cache[name]
    return fallback


_INDEX_LINE = re.compile(r"^\.(INCLUDE|SEGMENT)\b(.*(?:\n(?!\.).*)*)", re.M)


@register_source
class UnipenSource(ScoredAsCharacters, FittedOnTrainingText):
    """UNIPEN words (or other segment levels): character labels, a writer-disjoint split by hash; scored in
    characters (CER) and words (WER)."""

    kind = "unipen"
    default_units = "chars"

    def __init__(self, root: Path, options: UnipenOptions | None = None, train_split: str = "train") -> None:
        self.root = Path(root)
        self.options = options or UnipenOptions()
        self.train_split = train_split
        self.units = CharUnits()
        self._listing: Listing | None = None

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> UnipenSource:
        if corpus is None:
            return cls(root)
        return cls(root, UnipenOptions.from_section(getattr(corpus, "unipen", None)), corpus.train_split)

    # The index files are small; the include files' headers give writers. The points are read by ``read`` only.
    def listing(self) -> Listing:
        if self._listing is not None:
            return self._listing
        o = self.options
        include_dir = self.root / "include"
        rows: list[tuple[str, str, str, Path, Segment, str]] = []
        skipped: list[tuple[str, str]] = []
        oddities: Counter = Counter()
        missing: set[str] = set()
        seen: set[tuple[tuple[str, ...], str, str]] = set()
        writer_cache: dict[str, str] = {}
        for cat in o.categories:
            cat_dir = self.root / "data" / cat
            if not cat_dir.is_dir():
                raise CorpusError(cat_dir, "UNIPEN category folder not found")
            for f in sorted(cat_dir.rglob("*.dat")):
                site = f.relative_to(cat_dir).parts[0]
                if (o.sites and site not in o.sites) or site in o.exclude_sites:
                    continue
                if o.language and (site_language(site) == "en") != (o.language == "en"):
                    continue
                try:
                    text = f.read_bytes().decode("iso-8859-1")
                except OSError as exc:
                    skipped.append((str(f), f"cannot read ({exc.strerror or exc})"))
                    continue
                includes, segments = [], []
                try:
                    for m in _INDEX_LINE.finditer(text):
                        if m[1] == "INCLUDE":
                            includes.extend(m[2].split()[:1])
                        else:
                            segments.append(parse_segment(m[2], f))
                except CorpusError as exc:
                    skipped.append((str(f), exc.problem))
                    continue
                gone = [n for n in includes if not (include_dir / n).is_file()]
                if gone:
                    missing.update(gone)
                    skipped.append((str(f), "include file missing"))
                    continue
                writer = f"{site}/{_writer_of(include_dir, includes, f.stem, writer_cache)}"
                if o.writers and writer not in o.writers:
                    continue
                role = "site_test" if site in o.test_sites else writer_role(writer, o.dev_fraction,
                                                                             o.test_fraction, o.salt)
                for k, seg in enumerate(segments):
                    if seg.level != o.level.upper():
                        continue
                    key = (tuple(includes), seg.delineation, seg.label)
                    if key in seen:  # cat 6 and 7 list some index files twice
                        oddities["segment listed in two categories"] += 1
                        continue
                    seen.add(key)
                    if seg.quality not in o.qualities:
                        oddities[f"quality {seg.quality or 'missing'} left out"] += 1
                        continue
                    if not seg.label:
                        skipped.append((f"{f}#{k}", "segment without a label"))
                        continue
                    # The index file's path below the site, not just its stem: sites reuse file names in their
                    # sub-folders (sta's writers each have a hpb0yuko.dat), and utterance ids must be unique.
                    inner = "-".join(f.relative_to(cat_dir / site).with_suffix("").parts)
                    rows.append((f"c{cat}_{site}_{inner}_{k}", site, writer, f, seg, role))
        self._listing = Listing(rows, skipped, oddities, missing)
        return self._listing

    def training_texts(self) -> list[str]:
        return [seg.label for *_, seg, role in self.listing().rows
                if role == self.train_split and not outside_charset(seg.label, self.options.charset)]

    def split(self, name: str) -> SplitItems:
        """``train``/``dev``/``test`` by writer hash, ``site_test`` (the held-out sites); ``<split>_lines``: only
        the lines assembled from that split's words (``lines_from_words`` words at most, 4 when it is 0), to see
        whether a model reads lines with spaces; either optionally ending in ``_en`` or ``_other`` (English /
        non-English sites only). ``train`` also has the assembled lines when ``lines_from_words`` is set."""
        self._fit()
        rest, lang = name, ""
        for suffix in ("_en", "_other"):
            if rest.endswith(suffix):
                rest, lang = rest.removesuffix(suffix), suffix[1:]
        lines_only = rest.endswith("_lines")
        base = rest.removesuffix("_lines")
        if base not in ("train", "dev", "test", "site_test"):
            raise CorpusError(self.root, f"unknown UNIPEN split {name!r} (train, dev, test, site_test; then "
                                         "optionally _lines; then optionally _en or _other)")
        listing = self.listing()
        items: list[CorpusItem] = []
        skipped = list(listing.skipped)
        chosen = [r for r in listing.rows if r[5] == base
                  and (not lang or (site_language(r[1]) == "en") == (lang == "en"))]
        for utt, _site, writer, f, seg, _role in chosen:
            bad = outside_charset(seg.label, self.options.charset)
            if bad:
                skipped.append((f"{f}#{seg.delineation}", f"character {bad!r} is not in the chosen character set "
                                                          f"({self.options.charset or 'any but |'})"))
                continue
            try:  # dev and test references keep characters training never had: they are scored, not dropped
                labels = self.units.labels(seg.label, keep_unknown=base != "train")
            except UnitError as exc:
                skipped.append((f"{f}#{seg.delineation}", str(exc)))
                continue
            items.append(CorpusItem(utt, writer, f, labels, part=seg.delineation))
        if lines_only:
            return SplitItems(self._lines(chosen, self.options.lines_from_words or 4), skipped)
        if base == "train" and self.options.lines_from_words > 0:
            items.extend(self._lines(chosen, self.options.lines_from_words))
        return SplitItems(items, skipped)

    def _lines(self, rows: list[tuple[str, str, str, Path, Segment, str]], most: int) -> list[CorpusItem]:
        """Lines of ``line_words_min``..``lines_from_words`` consecutive words of one index file (one writer), in
        writing order; the sizes cycle deterministically so every length appears."""
        by_file: dict[Path, list[tuple[str, str, Segment]]] = {}
        for utt, _site, writer, f, seg, _role in rows:
            by_file.setdefault(f, []).append((utt, writer, seg))
        out: list[CorpusItem] = []
        lo, hi = max(1, self.options.line_words_min), max(1, most)
        sizes = list(range(lo, hi + 1)) or [hi]
        for f, words in by_file.items():
            words = [w for w in words if " " not in w[2].label]
            k = n = 0
            while k < len(words):
                group = words[k:k + sizes[n % len(sizes)]]
                k += len(group)
                n += 1
                if len(group) < 2:
                    continue
                text = " ".join(seg.label for *_, seg in group)
                try:
                    labels = self.units.labels(text)
                except UnitError:
                    continue  # its words were skipped (and counted) as words already
                part = "line:" + "|".join(seg.delineation for *_, seg in group)
                out.append(CorpusItem(f"{group[0][0]}_line{len(group)}", group[0][1], f, labels, part=part))
        return out

    def counts(self) -> dict[str, object]:
        """Items, writers and sites per role, what was skipped (by reason), oddities and missing includes."""
        listing = self.listing()
        by_role: dict[str, dict[str, int]] = {}
        for role in ("train", "dev", "test", "site_test"):
            rows = [r for r in listing.rows if r[5] == role]
            if rows:
                by_role[role] = {"items": len(rows), "writers": len({r[2] for r in rows}),
                                 "sites": len({r[1] for r in rows}),
                                 "non_english_items": sum(site_language(r[1]) != "en" for r in rows)}
        return {"roles": by_role, "skipped": dict(Counter(reason for _, reason in listing.skipped)),
                "oddities": dict(listing.oddities), "missing_includes": sorted(listing.missing_includes)}

    @staticmethod
    def read(path: str, part: str | None = None) -> Ink:
        """The pen strokes of one segment (or assembled line). Runs in prep's worker processes."""
        return read_unipen(path, part)[0]
