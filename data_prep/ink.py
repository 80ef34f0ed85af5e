"""Online handwriting as data: an :class:`Ink` is the pen strokes of one text line.

Every stroke (one pen-down trace) is an (N, 3) float array of x, y and time in seconds, y growing downward
(IAM-OnDB's whiteboard convention). The readers (``iam_ondb``, ``inkml``) and the generator (``synth_ondb``)
produce it; repair, normalisation and features are the next stage's (:mod:`lstm_asr.data.ink_features`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Ink:
    """Pen strokes of one text line (or word). ``repairs`` counts what the reader or :func:`repair` fixed."""

    strokes: list[np.ndarray]  # each (N, 3): x, y, t (seconds); y grows downward
    repairs: Counter = field(default_factory=Counter)
    # The recording device, when the file says (0 = not stated): resolution in points per inch along x and y, and
    # the sampling rate. UNIPEN states them; the features' device normalisation uses them.
    x_per_inch: float = 0.0
    y_per_inch: float = 0.0
    points_per_second: float = 0.0

    @property
    def num_points(self) -> int:
        return sum(len(s) for s in self.strokes)

    def points(self) -> np.ndarray:
        """All points, (total, 3), in writing order."""
        return np.concatenate(self.strokes) if self.strokes else np.zeros((0, 3))

    def stroke_ids(self) -> np.ndarray:
        """Stroke index of every point of :meth:`points`."""
        return np.repeat(np.arange(len(self.strokes)), [len(s) for s in self.strokes])

    @property
    def duration(self) -> float:
        p = self.points()
        return float(p[-1, 2] - p[0, 2]) if len(p) else 0.0
