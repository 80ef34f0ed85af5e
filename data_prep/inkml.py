"""W3C InkML (``<ink><trace>x y t, x y t, ...</trace></ink>``): read a user's own pen data, and write it.

Channels come from the document's ``<traceFormat>`` (default: X Y, as the W3C default context); a ``T`` channel
gives times in seconds (InkML's default unit for T is ms only when declared so: ``units="ms"`` is honoured). Without
T, points are taken as sampled at ``DEFAULT_RATE_HZ``. Traces with difference encoding (``'`` or ``"`` prefixes)
are refused with a one-line error rather than misread. An ``<annotation type="truth">`` is the transcription.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from data_prep.ink import Ink
from data_prep.safe_xml import parse_xml
from lstm_asr.errors import CorpusError

NS = "http://www.w3.org/2003/InkML"
DEFAULT_RATE_HZ = 100.0
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _channels(root: ET.Element) -> tuple[list[str], float]:
    """Channel names of the first traceFormat (default X Y) and the factor that turns T into seconds."""
    for el in root.iter():
        if _local(el.tag) == "traceFormat":
            chans = [c for c in el if _local(c.tag) == "channel"]
            names = [(c.get("name") or "").upper() for c in chans]
            t_scale = 1.0
            for c in chans:
                if (c.get("name") or "").upper() == "T" and (c.get("units") or "").lower() == "ms":
                    t_scale = 0.001
            if names:
                return names, t_scale
    return ["X", "Y"], 1.0


def ink_from_inkml(root: ET.Element, path: Path) -> Ink:
    """Strokes of a parsed InkML document (one stroke per ``<trace>``)."""
    if _local(root.tag) != "ink":
        raise CorpusError(path, f"not an InkML file (root element <{root.tag}>)")
    names, t_scale = _channels(root)
    if "X" not in names or "Y" not in names:
        raise CorpusError(path, f"traceFormat has no X and Y channels ({' '.join(names)})")
    ix, iy, it = names.index("X"), names.index("Y"), names.index("T") if "T" in names else None
    strokes, clock = [], 0.0
    for n, trace in enumerate((el for el in root.iter() if _local(el.tag) == "trace"), 1):
        rows = []
        for point in (trace.text or "").split(","):
            values = point.split()
            if not values:
                continue
            if any(not _NUMBER.match(v) for v in values):
                raise CorpusError(path, f"trace {n}: {point.strip()!r} is not a list of plain numbers "
                                  "(difference-encoded traces are not supported)")
            if len(values) < len(names) and len(values) < max(ix, iy, it or 0) + 1:
                raise CorpusError(path, f"trace {n}: point {point.strip()!r} has {len(values)} values, the "
                                  f"traceFormat {len(names)}")
            rows.append([float(v) for v in values])
        if not rows:
            strokes.append(np.zeros((0, 3)))
            continue
        width = min(len(r) for r in rows)
        arr = np.asarray([r[:width] for r in rows], dtype=np.float64)
        if it is not None:
            t = arr[:, it] * t_scale
        else:
            t = clock + np.arange(len(arr)) / DEFAULT_RATE_HZ
            clock = t[-1] + 0.2  # a pen-up pause between traces
        if not np.all(np.isfinite(arr)):
            raise CorpusError(path, f"trace {n}: values that are not finite")
        strokes.append(np.column_stack([arr[:, ix], arr[:, iy], t]))
    if not any(len(s) for s in strokes):
        raise CorpusError(path, "no points")
    return Ink(strokes)


def read_inkml(path: str | Path) -> Ink:
    """Read an InkML file (safe parse: no DTD or entities)."""
    path = Path(path)
    return ink_from_inkml(parse_xml(path), path)


def inkml_truth(path: str | Path) -> str | None:
    """The ``<annotation type="truth">`` text of an InkML file, or None."""
    return truth_of(parse_xml(path))


def truth_of(root: ET.Element) -> str | None:
    """The ``<annotation type="truth">`` text of a parsed InkML document, or None."""
    for el in root.iter():
        if _local(el.tag) == "annotation" and el.get("type") == "truth" and el.text:
            return el.text.strip()
    return None


def write_inkml(path: str | Path, ink: Ink, truth: str | None = None) -> None:
    """Write strokes as InkML with X, Y and T (seconds) channels and an optional truth annotation."""
    root = ET.Element("ink", xmlns=NS)
    fmt = ET.SubElement(root, "traceFormat")
    for name in ("X", "Y", "T"):
        ET.SubElement(fmt, "channel", name=name, type="decimal")
    if truth is not None:
        ET.SubElement(root, "annotation", type="truth").text = truth
    for s in ink.strokes:
        ET.SubElement(root, "trace").text = ", ".join(f"{x:g} {y:g} {t:.3f}" for x, y, t in s)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
