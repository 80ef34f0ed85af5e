"""``lstm-asr render``: draw pen strokes as a PNG, one colour per stroke, with a text line beneath (Pillow).

Pillow is an optional dependency (``pip install 'lstm-asr[ink]'``): a few MB with no further requirements, where
matplotlib would bring a plotting stack for what is a handful of polylines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep.ink import Ink
from lstm_asr.errors import LstmAsrError

# Distinct, print-friendly colours (Okabe & Ito 2008), cycled over strokes.
PALETTE = [(0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (86, 180, 233), (230, 159, 0),
           (0, 0, 0), (240, 228, 66)]


@dataclass
class RenderInfo:
    """What was drawn: pixel position of every point (writing order), strokes, image size."""

    pixels: np.ndarray  # (points, 2) int: column, row
    strokes: int
    size: tuple[int, int]


def render_ink(ink: Ink, out: str | Path, text: str | None = None, width: int = 1400, margin: int = 20,
               line_width: int = 3) -> RenderInfo:
    """Draw ``ink`` into a PNG ``width`` pixels wide (height follows the ink's aspect), ``text`` beneath it."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise LstmAsrError("render needs the Pillow package (pip install 'lstm-asr[ink]')") from None
    pts = ink.points()
    if len(pts) == 0:
        raise LstmAsrError(f"{out}: no points to draw")
    lo = pts[:, :2].min(0)
    span = np.maximum(pts[:, :2].max(0) - lo, 1e-9)
    scale = (width - 2 * margin) / max(span[0], span[1] * 2)
    ink_h = int(np.ceil(span[1] * scale)) + 2 * margin
    text_h = 40 if text is not None else 0
    size = (width, ink_h + text_h)
    pixels = np.round((pts[:, :2] - lo) * scale + margin).astype(int)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for k, stroke in enumerate(np.split(pixels, np.cumsum([len(s) for s in ink.strokes])[:-1])):
        colour = PALETTE[k % len(PALETTE)]
        xy = [tuple(p) for p in stroke.tolist()]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=line_width, joint="curve")
        r = max(line_width // 2, 1)
        for x, y in xy:  # every sampled point is drawn, so single-point strokes (dots) show too
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    if text is not None:
        try:
            font = ImageFont.load_default(size=24)
        except TypeError:  # Pillow < 10.1 has one fixed-size default font
            font = ImageFont.load_default()
        draw.line((margin, ink_h, width - margin, ink_h), fill=(200, 200, 200), width=1)
        draw.text((margin, ink_h + 6), text, fill="black", font=font)
    out = Path(out)
    try:
        image.save(out, format="PNG")
    except OSError as exc:
        raise LstmAsrError(f"{out}: cannot write image ({exc})") from None
    return RenderInfo(pixels, len(ink.strokes), size)
