"""IAM On-Line Handwriting Database (IAM-OnDB): stroke XML, ``ascii`` transcriptions, split files, corpus source.

Layout (``/work/shared/reference/iam_ondb/FORMAT.md``)::

    lineStrokes/a01/a01-000/a01-000u-01.xml   one text line's pen strokes (WhiteboardCaptureSession XML)
    ascii/a01/a01-000/a01-000u.txt            the form's text; lines after "CSR:" -- line k goes with -0k.xml
    trainset.txt testset_v.txt testset_t.txt testset_f.txt   form ids per split

Split names in a recipe: ``train`` (trainset), ``dev`` (testset_v, validation 1), ``dev2`` (testset_t,
validation 2) and ``test`` (testset_f, final test) -- the official roles; any other name is a split file's stem
under the corpus root (``testset_t``), so a recipe can reassign roles. An optional ``writers.txt`` (``form-id
writer-id`` per line; the generated corpus writes one) gives writers; without it each form counts as its writer.

XML is parsed by :mod:`data_prep.safe_xml`: no document type declarations, hence no entity bombs or external
entities.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np

from data_prep.ink import Ink
from data_prep.inkml import ink_from_inkml, truth_of
from data_prep.safe_xml import parse_xml
from data_prep.sources import CorpusItem, SplitItems, register_source
from data_prep.unipen import looks_like_unipen, read_unipen
from data_prep.units import CharUnits, FittedOnTrainingText, ScoredAsCharacters, UnitError
from lstm_asr.errors import CorpusError

SPLIT_FILES = {"train": "trainset.txt", "dev": "testset_v.txt", "dev2": "testset_t.txt", "test": "testset_f.txt"}
_LINE_FILE = re.compile(r"^(?P<form>.+)-(?P<line>\d+)$")


def _number(el: ET.Element, attr: str, path: Path) -> float:
    raw = el.get(attr)
    if raw is None:
        raise CorpusError(path, f"<{el.tag}> without the '{attr}' attribute")
    try:
        value = float(raw)
    except ValueError:
        raise CorpusError(path, f"<{el.tag}> {attr}={raw!r} is not a number") from None
    if not np.isfinite(value):
        raise CorpusError(path, f"<{el.tag}> {attr}={raw!r} is not finite")
    return value


def ink_from_strokes_xml(root: ET.Element, path: Path) -> Ink:
    """Strokes of a parsed ``WhiteboardCaptureSession`` (IAM-OnDB lineStrokes) document."""
    if root.tag != "WhiteboardCaptureSession":
        raise CorpusError(path, f"not an IAM-OnDB stroke file (root element <{root.tag}>)")
    strokes = []
    for stroke in root.iter("Stroke"):
        pts = [(_number(p, "x", path), _number(p, "y", path), _number(p, "time", path)) for p in stroke.iter("Point")]
        strokes.append(np.asarray(pts, dtype=np.float64).reshape(-1, 3))
    if not any(len(s) for s in strokes):
        raise CorpusError(path, "no points")
    return Ink(strokes)


def read_strokes(path: str | Path) -> Ink:
    """Read an IAM-OnDB ``lineStrokes`` XML file (no repair yet: see :func:`lstm_asr.data.ink_features.repair`)."""
    path = Path(path)
    return ink_from_strokes_xml(parse_xml(path), path)


def write_strokes(path: str | Path, ink: Ink) -> None:
    """Write strokes as IAM-OnDB ``lineStrokes`` XML (ISO-8859-1), coordinates as integers like the real files,
    times with millisecond precision."""
    pts = ink.points()
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    lines = ['<?xml version="1.0" encoding="ISO-8859-1"?>', "<WhiteboardCaptureSession>",
             "  <WhiteboardDescription>", '    <SensorLocation corner="top_left"/>',
             f'    <DiagonallyOppositeCoords x="{int(hi[0]) + 50}" y="{int(hi[1]) + 50}"/>',
             f'    <VerticallyOppositeCoords x="{int(lo[0]) - 50}" y="{int(hi[1]) + 50}"/>',
             f'    <HorizontallyOppositeCoords x="{int(hi[0]) + 50}" y="{int(lo[1]) - 50}"/>',
             "  </WhiteboardDescription>", "  <StrokeSet>"]
    for s in ink.strokes:
        lines.append(f'    <Stroke colour="black" start_time="{s[0, 2]:.3f}" end_time="{s[-1, 2]:.3f}">')
        lines.extend(f'      <Point x="{int(round(x))}" y="{int(round(y))}" time="{t:.3f}"/>' for x, y, t in s)
        lines.append("    </Stroke>")
    lines += ["  </StrokeSet>", "</WhiteboardCaptureSession>", ""]
    Path(path).write_bytes("\n".join(lines).encode("iso-8859-1"))


def read_ink(path: str | Path) -> Ink:
    """Read pen strokes from IAM-OnDB stroke XML or W3C InkML, told apart by the root element (or one UNIPEN
    segment, see :func:`read_ink_and_truth`)."""
    return read_ink_and_truth(path, with_truth=False)[0]


def read_ink_and_truth(path: str | Path, with_truth: bool = True) -> tuple[Ink, str | None]:
    """The strokes of an IAM-OnDB XML or InkML file and its transcription, when it carries one (an InkML
    ``<annotation type="truth">``, or the ``ascii`` line of a stroke file inside an IAM-OnDB tree).

    A UNIPEN file (its first character a ``.KEYWORD``) gives one segment and its label: the first, or the one
    after ``#`` in the name (``data/6/abm/ca0.dat#0-4``, ``...#@3``; see :func:`data_prep.unipen.read_unipen`)."""
    if looks_like_unipen(path):
        ink, label = read_unipen(path)
        return ink, label if with_truth else None
    path = Path(path)
    root = parse_xml(path)
    if root.tag.rsplit("}", 1)[-1] == "ink":
        return ink_from_inkml(root, path), truth_of(root) if with_truth else None
    return ink_from_strokes_xml(root, path), reference_text(path) if with_truth else None


def read_transcription(path: str | Path) -> list[str]:
    """The text lines of an ``ascii`` file: those after ``CSR:`` (and the blank line after it)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("iso-8859-1")
    except FileNotFoundError:
        raise CorpusError(path, "transcription file not found") from None
    except OSError as exc:
        raise CorpusError(path, f"cannot read ({exc.strerror or exc})") from None
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "CSR:")
    except StopIteration:
        raise CorpusError(path, "no 'CSR:' section") from None
    body = lines[start + 1 :]
    while body and not body[0].strip():
        body = body[1:]
    while body and not body[-1].strip():
        body = body[:-1]
    return [line.strip() for line in body]


def write_transcription(path: str | Path, form_id: str, lines: list[str]) -> None:
    """Write an ``ascii`` file in IAM-OnDB's layout (an OCR section, then the ``CSR:`` section)."""
    text = "OCR:\n\n" + "\n".join(lines) + "\n\nCSR:\n\n" + "\n".join(lines) + "\n"
    Path(path).write_bytes(text.encode("iso-8859-1"))


def transcription_for(stroke_file: str | Path) -> tuple[Path, int]:
    """The ``ascii`` file and 1-based line number that go with a stroke file ``.../lineStrokes/a/b/b-01.xml``."""
    stroke_file = Path(stroke_file)
    m = _LINE_FILE.match(stroke_file.stem)
    if not m or len(stroke_file.parents) < 4 or stroke_file.parents[2].name != "lineStrokes":
        raise CorpusError(stroke_file, "not inside an IAM-OnDB lineStrokes/<a>/<form>/ folder")
    root = stroke_file.parents[3]
    return root / "ascii" / stroke_file.parent.parent.name / stroke_file.parent.name / f"{m['form']}.txt", \
        int(m["line"])


def reference_text(stroke_file: str | Path) -> str | None:
    """The transcription of a stroke file inside an IAM-OnDB tree, or None when it has none."""
    try:
        ascii_file, k = transcription_for(stroke_file)
        lines = read_transcription(ascii_file)
    except CorpusError:
        return None
    return lines[k - 1] if 0 < k <= len(lines) else None


def read_split_file(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text(encoding="iso-8859-1").splitlines() if line.strip()]
    except FileNotFoundError:
        raise CorpusError(path, "split file not found") from None


def form_dir(root: Path, form_id: str) -> Path:
    """``a01-020x`` -> ``lineStrokes/a01/a01-020``."""
    base = re.sub(r"[a-z]$", "", form_id)
    return root / "lineStrokes" / form_id.split("-")[0] / base


@register_source
class OndbSource(ScoredAsCharacters, FittedOnTrainingText):
    """IAM-OnDB (or the generated corpus in its layout): character labels, space included (as ``|``); scored in
    characters (CER) and words (WER)."""

    kind = "ondb"
    default_units = "chars"

    def __init__(self, root: Path, train_split: str = "train") -> None:
        self.root = Path(root)
        self.train_split = train_split
        self.units = CharUnits()
        self._listing: dict[str, tuple[list[tuple[str, str, Path, str]], list[tuple[str, str]]]] = {}
        writers = self.root / "writers.txt"
        self.writers = dict(line.split()[:2] for line in writers.read_text().splitlines() if len(line.split()) >= 2) \
            if writers.is_file() else {}

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> OndbSource:
        return cls(root) if corpus is None else cls(root, train_split=corpus.train_split)

    def split_file(self, name: str) -> Path:
        return self.root / SPLIT_FILES.get(name, f"{name}.txt")

    def listing(self, name: str) -> tuple[list[tuple[str, str, Path, str]], list[tuple[str, str]]]:
        """(utt id, writer, stroke file, text) per line of the split's forms, and (file, reason) skips."""
        if name in self._listing:
            return self._listing[name]
        lines, skipped = [], []
        for form in read_split_file(self.split_file(name)):
            d = form_dir(self.root, form)
            files = sorted(d.glob(f"{form}-*.xml"))
            if not files:
                skipped.append((str(d / f"{form}-*.xml"), "form has no stroke files"))
                continue
            try:
                text_lines = read_transcription(transcription_for(files[0])[0])
            except CorpusError as exc:
                skipped.extend((str(f), exc.problem) for f in files)
                continue
            for f in files:
                k = transcription_for(f)[1]
                if not 0 < k <= len(text_lines) or not text_lines[k - 1]:
                    skipped.append((str(f), f"transcription line {k} missing"))
                    continue
                lines.append((f.stem, self.writers.get(form, form), f, text_lines[k - 1]))
        self._listing[name] = (lines, skipped)
        return lines, skipped

    def training_texts(self) -> list[str]:
        return [t for *_, t in self.listing(self.train_split)[0]]

    def split(self, name: str) -> SplitItems:
        """A split's lines; characters outside the training text's skip a training line and stay in any other
        split's labels (a reference, scored: they are errors no model trained here can avoid)."""
        self._fit()
        lines, skipped = self.listing(name)
        items, skipped = [], list(skipped)
        for utt, writer, f, text in lines:
            try:
                labels = self.units.labels(text, keep_unknown=name != self.train_split)
            except UnitError as exc:
                skipped.append((str(f), str(exc)))
                continue
            items.append(CorpusItem(utt, writer, f, labels))
        return SplitItems(items, skipped)

    @staticmethod
    def read(path: str) -> Ink:
        """The pen strokes of one stroke file (XML or InkML). Runs in prep's worker processes."""
        return read_ink(path)


def repair_summary(counts: Counter) -> str:
    return ", ".join(f"{n} x {k}" for k, n in counts.most_common()) or "none"
