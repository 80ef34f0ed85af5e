"""Online handwriting features: pen traces repaired, normalised and turned into per-point features for the BLSTM.

The pen traces themselves (:class:`data_prep.ink.Ink`) and the readers of their file formats live in
``data_prep``; this module is what happens after reading:

1. :func:`repair`: the glitches of real pen data -- empty strokes, repeated time stamps, single-point outliers --
   are fixed or dropped, and counted. Before it, with ``resolution`` on, :func:`to_millimetres` puts every device's
   points in one unit by the resolution its file states (UNIPEN: ``.X_POINTS_PER_INCH``; a different x and y
   resolution no longer stretches the ink).
2. :func:`normalize`: skew (the line's direction), slant (the dominant angle of down-strokes), position and height
   (the line's core height, the x-height band) are removed, after Graves et al. 2009. With ``arc_weighted`` the
   skew line and the core band are estimated with every point weighted by the length of trace it stands for, so
   a device that samples twice as often (or a writer who slows down) no longer moves them.
3. :func:`resample`: points are placed equidistantly along each trace (Carbune et al. 2020), so writing speed and
   sampling rate do not change the number of frames (``spacing: 0`` keeps the device's own points).
4. :func:`ink_features`: per point dx, dy, dt, pen-up (last point of a stroke) and start-of-stroke (Carbune et
   al. 2020). With ``pen_up_time`` off, a stroke's first point gets dt 0: how long the pen was up is only known to
   devices that record pen-up movement (or time stamps), so leaving it out makes ink from a device without
   pen-up data look like ink from one with it (the strokes themselves are pen-down traces either way).
   Mean/variance normalisation with training statistics is the model's :class:`Normalizer`, as for speech.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from data_prep.ink import Ink
from lstm_asr.errors import LstmAsrError

FEATURE_NAMES = ("dx", "dy", "dt", "pen_up", "stroke_start")
DEVICE_OPTIONS = ("resolution", "arc_weighted", "size", "pen_up_time")
MM_PER_INCH = 25.4
# Digitisers state 80 to a few thousand points per inch; a stated resolution outside these bounds is a damaged
# header, and scaling by it would only blow the coordinates up (or to 0): such ink keeps its own units.
MIN_PER_INCH, MAX_PER_INCH = 1.0, 1e6


@dataclass(frozen=True)
class InkFeatureConfig:
    """Ink feature settings; stored with every model (``type`` tells them from the speech features)."""

    type: str = "ink"
    spacing: float = 0.15  # resampling distance along the trace, in core heights; 0 = the device's own points
    deskew: bool = True
    deslant: bool = True
    # Device independence (each switchable, so what it buys can be measured; off = the behaviour before them):
    resolution: bool = False  # points to millimetres by the ink's stated points per inch
    arc_weighted: bool = False  # skew line and core band from arc-length-weighted points (rate-independent)
    size: bool = True  # divide by the core height (off: keep the unit, mm with ``resolution``)
    pen_up_time: bool = True  # dt of a stroke's first point is the pen-up time (off: 0)

    @property
    def dim(self) -> int:
        return len(FEATURE_NAMES)

    def to_dict(self) -> dict:
        """The settings; the device-independence ones only where they differ from their defaults, so features
        prepared and models trained before they existed keep their fingerprints and settings."""
        d = asdict(self)
        for name in DEVICE_OPTIONS:
            if d[name] == getattr(InkFeatureConfig, name):
                del d[name]
        return d

    def device_options_set(self) -> list[str]:
        """The device-independence settings that differ from their defaults (the TorchScript front end has none)."""
        return [n for n in DEVICE_OPTIONS if getattr(self, n) != getattr(InkFeatureConfig, n)]

    @classmethod
    def from_dict(cls, d: dict) -> InkFeatureConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _spread_repeated_times(t: np.ndarray) -> tuple[np.ndarray, int]:
    """Make times strictly increasing: runs of equal (or backward) stamps are spread evenly up to the next stamp.

    Returns the new times and how many stamps were changed. Vectorised over runs with ``np.unique``.
    """
    if len(t) < 2:
        return t, 0
    mono = np.maximum.accumulate(t)
    uniq, first, counts = np.unique(mono, return_index=True, return_counts=True)
    changed = int(np.sum(counts - 1)) + int(np.sum(mono != t))
    if changed == 0:
        return t, 0
    diffs = np.diff(uniq)
    step = float(np.median(diffs)) if len(diffs) else 0.01
    nxt = np.append(uniq[1:], uniq[-1] + step * counts[-1])
    run = np.repeat(np.arange(len(uniq)), counts)
    rank = np.arange(len(mono)) - first[run]
    return uniq[run] + rank / counts[run] * (nxt[run] - uniq[run]), changed


def repair(ink: Ink, outlier_factor: float = 25.0) -> Ink:
    """Fix the glitches real pen data has, counting each kind in ``ink.repairs`` (a new Ink is returned).

    - empty strokes are dropped (``empty stroke``);
    - a point far from both neighbours while they are close to each other is a sensor spike and is removed
      (``outlier point``); "far" is ``outlier_factor`` times the median step between consecutive points;
    - repeated or backward time stamps are spread evenly up to the next stamp (``repeated time stamp``).
    """
    repairs = Counter(ink.repairs)
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 3) for s in ink.strokes]
    if any(len(s) == 0 for s in strokes):
        repairs["empty stroke"] += sum(len(s) == 0 for s in strokes)
        strokes = [s for s in strokes if len(s)]
    if not strokes:
        return Ink([], repairs)
    steps = np.concatenate([np.hypot(*np.diff(s[:, :2], axis=0).T) for s in strokes if len(s) > 1] or [np.zeros(0)])
    moving = steps[steps > 0]
    if len(moving):
        far = outlier_factor * float(np.median(moving))
        kept = []
        for s in strokes:  # per stroke (tens per line), vectorised within
            if len(s) >= 3:
                d_prev = np.hypot(*(s[1:-1, :2] - s[:-2, :2]).T)
                d_next = np.hypot(*(s[1:-1, :2] - s[2:, :2]).T)
                d_skip = np.hypot(*(s[2:, :2] - s[:-2, :2]).T)
                spike = (d_prev > far) & (d_next > far) & (d_skip < far)
                if spike.any():
                    repairs["outlier point"] += int(spike.sum())
                    s = s[np.concatenate([[True], ~spike, [True]])]
            kept.append(s)
        strokes = kept
    lengths = [len(s) for s in strokes]
    t, changed = _spread_repeated_times(np.concatenate([s[:, 2] for s in strokes]))
    if changed:
        repairs["repeated time stamp"] += changed
        pts = np.concatenate(strokes)
        pts[:, 2] = t
        strokes = np.split(pts, np.cumsum(lengths)[:-1])
    return Ink(strokes, repairs)


def to_millimetres(ink: Ink) -> Ink:
    """Points in millimetres by the ink's stated resolution (``x_per_inch``, ``y_per_inch``); ink without a stated
    (or a plausible) resolution is returned as it is (and counted as ``resolution unknown`` / ``implausible``)."""
    if not (MIN_PER_INCH <= ink.x_per_inch <= MAX_PER_INCH and MIN_PER_INCH <= ink.y_per_inch <= MAX_PER_INCH):
        repairs = Counter(ink.repairs)
        repairs["resolution unknown" if ink.x_per_inch <= 0 or ink.y_per_inch <= 0 else "resolution implausible"] += 1
        return Ink(ink.strokes, repairs, ink.x_per_inch, ink.y_per_inch, ink.points_per_second)
    scale = np.array([MM_PER_INCH / ink.x_per_inch, MM_PER_INCH / ink.y_per_inch, 1.0])
    return Ink([s * scale for s in ink.strokes], Counter(ink.repairs), MM_PER_INCH, MM_PER_INCH,
               ink.points_per_second)


def arc_weights(xy: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per point, half the trace length to its neighbours in the same stroke: the share of ink it stands for.
    Resampling a trace more densely spreads the same length over more points, so weighted statistics do not
    change. All zeros for ink that does not move."""
    seg = np.hypot(*np.diff(xy, axis=0).T) * (ids[1:] == ids[:-1])
    return 0.5 * (np.concatenate([[0.0], seg]) + np.concatenate([seg, [0.0]]))


def weighted_percentiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> np.ndarray:
    """Percentiles (0-100) of ``values`` under ``weights`` (midpoint rule on the weighted CDF); unweighted when the
    weights sum to 0."""
    total = float(weights.sum())
    if total <= 0:
        return np.percentile(values, qs)
    order = np.argsort(values, kind="stable")
    w = weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / total
    return np.interp(np.asarray(qs) / 100.0, cdf, values[order])


def normalize(ink: Ink, deskew: bool = True, deslant: bool = True, arc_weighted: bool = False,
              size: bool = True) -> Ink:
    """Remove skew, slant, position and scale: x starts at 0, the core (x-height) band spans y in about
    [-0.5, 0.5] (``size`` off: centred, not scaled), times start at 0. ``arc_weighted``: the skew line and the
    core band weigh points by the trace length they stand for (see :func:`arc_weights`). Raises LstmAsrError for
    ink without points."""
    pts = ink.points().copy()
    if len(pts) == 0:
        raise LstmAsrError("no points")
    ids = ink.stroke_ids()
    weights = arc_weights(pts[:, :2], ids) if arc_weighted else np.ones(len(pts))
    if weights.sum() <= 0:  # ink that never moves: every point counts alike
        weights = np.ones(len(pts))
    xy = pts[:, :2] - (weights @ pts[:, :2]) / weights.sum()
    if deskew and np.ptp(xy[:, 0]) > 0:
        # The least-squares line through all points follows the text line; rotate it to the horizontal.
        # (np.polyfit weighs residuals, hence the square root for weighted squared residuals.)
        angle = np.arctan(np.polyfit(xy[:, 0], xy[:, 1], 1, w=np.sqrt(weights))[0])
        c, s = np.cos(-angle), np.sin(-angle)
        xy = xy @ np.array([[c, s], [-s, c]])
    if deslant:
        # Pen-down segments within 45 degrees of vertical; their length-weighted median dx/dy is the slant.
        seg = np.diff(xy, axis=0)
        same = ids[1:] == ids[:-1]
        dx, dy = seg[same, 0], seg[same, 1]
        steep = np.abs(dy) > np.abs(dx)
        if steep.sum() >= 5:
            shear = dx[steep] / dy[steep]
            weight = np.hypot(dx[steep], dy[steep])
            order = np.argsort(shear)
            cum = np.cumsum(weight[order])
            slant = shear[order][np.searchsorted(cum, cum[-1] / 2)]
            xy[:, 0] -= slant * xy[:, 1]
    # The core band holds most of the ink; ascenders are rarer.
    lo, hi = weighted_percentiles(xy[:, 1], weights, [20, 80]) if arc_weighted else np.percentile(xy[:, 1], [20, 80])
    height = hi - lo
    if not size:
        height = 1.0
    # A band that is nothing next to the ink's extent is degenerate (a flat line; or 1e-17 of rounding after
    # deskewing two points, which made x / height astronomically large: found by tests/test_fuzz.py).
    if size and height <= 1e-3 * max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1])):
        height = max(np.ptp(xy[:, 1]), np.ptp(xy[:, 0]) / 10, 1e-6)
    xy[:, 1] = (xy[:, 1] - (lo + hi) / 2) / height
    xy[:, 0] = (xy[:, 0] - xy[:, 0].min()) / height
    pts[:, :2] = xy
    pts[:, 2] -= pts[0, 2]
    return Ink(np.split(pts, np.cumsum([len(s) for s in ink.strokes])[:-1]), Counter(ink.repairs))


MAX_MAGNITUDE = 1e15  # pen coordinates are thousands; times up to ~1e9 (IAM-OnDB stores Unix seconds)
MAX_RESAMPLED_POINTS = 200_000
"""A text line is a few thousand points at the default spacing; far more means the ink is not a line of
handwriting (or ``spacing`` is absurdly small), and is refused before the points are allocated."""


def resample(ink: Ink, spacing: float) -> Ink:
    """Points every ``spacing`` units of arc length along each stroke (first and last point kept); time is
    interpolated along with the position. More than :data:`MAX_RESAMPLED_POINTS` points is an LstmAsrError."""
    arcs = [np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(s[:, :2], axis=0).T))]) for s in ink.strokes]
    lengths = np.array([arc[-1] for arc in arcs])
    if not np.isfinite(lengths).all():
        raise LstmAsrError("ink coordinates too large to normalise: not pen data")
    counts = [max(int(min(np.ceil(length / spacing), 2.0**62)), 1) if length > 0 else 0 for length in lengths]
    if sum(counts) + len(arcs) > MAX_RESAMPLED_POINTS:
        raise LstmAsrError(f"{sum(counts) + len(arcs)} points after resampling every {spacing:g} core heights (at "
                           f"most {MAX_RESAMPLED_POINTS}): not a line of handwriting")
    out = []
    for s, arc, n in zip(ink.strokes, arcs, counts, strict=True):  # per stroke; each vectorised with np.interp
        at = np.linspace(0.0, arc[-1], n + 1) if n else np.zeros(1)
        out.append(np.stack([np.interp(at, arc, s[:, k]) for k in range(3)], axis=1))
    return Ink(out, Counter(ink.repairs))


def ink_features(ink: Ink, pen_up_time: bool = True) -> np.ndarray:
    """(points, 5) float32: dx, dy, dt from the previous point (the pen-up jump for a stroke's first point; 0 for
    the first point of the line), pen-up (1 on a stroke's last point) and start-of-stroke (1 on its first).
    ``pen_up_time`` off: dt is 0 on every stroke's first point (the pen-up time is not known to every device)."""
    pts = ink.points()
    if len(pts) == 0:
        raise LstmAsrError("no points")
    delta = np.diff(pts, axis=0, prepend=pts[:1])
    ids = ink.stroke_ids()
    start = np.concatenate([[True], ids[1:] != ids[:-1]])
    end = np.concatenate([ids[1:] != ids[:-1], [True]])
    if not pen_up_time:
        delta[start, 2] = 0.0
    return np.column_stack([delta, end, start]).astype(np.float32)


def featurize_ink(ink: Ink, cfg: InkFeatureConfig) -> tuple[np.ndarray, Ink]:
    """Repair, normalise, resample, and compute features; also returns the resampled ink (for point times).

    Ink whose coordinates or times reach :data:`MAX_MAGNITUDE` (where sums and differences of them overflow), or
    whose features would not be finite, is an LstmAsrError: a NaN must never reach training.
    """
    pts = ink.points()
    if len(pts) and not np.all(np.abs(pts) < MAX_MAGNITUDE):  # also False for NaN
        raise LstmAsrError(f"coordinates or times beyond {MAX_MAGNITUDE:g}: not pen data")
    if cfg.resolution:  # first: repair keeps the strokes, not the device's resolution
        ink = to_millimetres(ink)
    fixed = repair(ink)
    if fixed.num_points == 0:
        raise LstmAsrError("no points")
    norm = normalize(fixed, cfg.deskew, cfg.deslant, cfg.arc_weighted, cfg.size)
    if cfg.spacing > 0:
        norm = resample(norm, cfg.spacing)
    feats = ink_features(norm, cfg.pen_up_time)
    if not np.isfinite(feats).all():
        raise LstmAsrError("non-finite ink features (degenerate coordinates or times)")
    return feats, norm
