"""The online-handwriting front end (:func:`lstm_asr.data.ink_features.featurize_ink`) in TorchScript, so an exported
handwriting model takes pen strokes and carries its ink normalisation inside (``lstm-asr export``).

Step for step the numpy pipeline: repair (empty strokes, single-point spikes, repeated time stamps), normalise
(deskew by the least-squares line, deslant by the length-weighted median shear of steep pen-down segments, the
20-80% core band to unit height), resample every ``spacing`` core heights along each stroke, and per-point dx, dy,
dt, pen-up and stroke-start features. float64 as in numpy; ``tests/test_export_kinds.py`` compares the two.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lstm_asr.data.ink_features import MAX_MAGNITUDE, MAX_RESAMPLED_POINTS, InkFeatureConfig
from lstm_asr.errors import LstmAsrError


def _hypot(d: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])


def _median(x: torch.Tensor) -> float:
    return float(torch.quantile(x, 0.5))  # numpy's median: the mean of the two middle values


def _spread_repeated_times(t: torch.Tensor) -> torch.Tensor:
    if t.numel() < 2:
        return t
    mono = torch.cummax(t, 0).values
    uniq, counts = torch.unique_consecutive(mono, return_counts=True)
    changed = int((counts - 1).sum()) + int((mono != t).sum())
    if changed == 0:
        return t
    first = torch.cumsum(counts, 0) - counts
    step = _median(uniq[1:] - uniq[:-1]) if uniq.numel() > 1 else 0.01
    nxt = torch.cat([uniq[1:], (uniq[-1] + step * counts[-1]).reshape(1)])
    run = torch.repeat_interleave(torch.arange(uniq.numel()), counts)
    rank = torch.arange(mono.numel(), dtype=t.dtype) - first[run].to(t.dtype)
    return uniq[run] + rank / counts[run].to(t.dtype) * (nxt[run] - uniq[run])


def _interp(at: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """numpy.interp for a non-decreasing ``xp`` and ``at`` within [xp[0], xp[-1]]."""
    if xp.numel() == 1:
        return fp.expand(at.numel()).clone()
    j = (torch.searchsorted(xp, at, right=True) - 1).clamp(0, xp.numel() - 2)
    x0, x1, f0, f1 = xp[j], xp[j + 1], fp[j], fp[j + 1]
    width = x1 - x0
    safe = torch.where(width > 0, width, torch.ones_like(width))
    out = f0 + (f1 - f0) / safe * (at - x0)
    return torch.where(at >= xp[-1], fp[-1].expand(at.numel()), torch.where(width > 0, out, f0))


class ScriptableInkFeatures(nn.Module):
    """Pen strokes (a list of (n, 3) float64 tensors: x, y, t) -> ink features (points, 5) float32."""

    def __init__(self, cfg: InkFeatureConfig, outlier_factor: float = 25.0) -> None:
        super().__init__()
        if cfg.device_options_set() or cfg.spacing <= 0:
            # Resolution normalisation needs the device's points per inch, which plain (n, 3) strokes do not
            # carry; the other options are not written in TorchScript (yet). Refuse rather than export a front
            # end that differs from the one the model was trained with.
            shown = ", ".join(cfg.device_options_set() + (["spacing 0"] if cfg.spacing <= 0 else []))
            raise LstmAsrError(f"the TorchScript ink front end does not implement {shown}: export the ONNX network "
                               "(features in) for this model")
        self.spacing = cfg.spacing
        self.deskew = cfg.deskew
        self.deslant = cfg.deslant
        self.outlier_factor = outlier_factor
        self.max_magnitude = MAX_MAGNITUDE  # module attributes: TorchScript does not read module-level globals
        self.max_points = MAX_RESAMPLED_POINTS

    def _repair(self, strokes: list[torch.Tensor]) -> list[torch.Tensor]:
        nonempty: list[torch.Tensor] = []  # (TorchScript has no comprehension filters)
        steps: list[torch.Tensor] = []
        for s in strokes:
            if s.shape[0] > 0:
                nonempty.append(s)
            if s.shape[0] > 1:
                steps.append(_hypot(s[1:, :2] - s[:-1, :2]))
        strokes = nonempty
        if len(strokes) == 0:
            raise ValueError("no points")
        all_steps = torch.cat(steps) if len(steps) > 0 else torch.zeros(0, dtype=torch.float64)
        moving = all_steps[all_steps > 0]
        if moving.numel() > 0:
            far = self.outlier_factor * _median(moving)
            kept: list[torch.Tensor] = []
            for s in strokes:
                if s.shape[0] >= 3:
                    d_prev = _hypot(s[1:-1, :2] - s[:-2, :2])
                    d_next = _hypot(s[1:-1, :2] - s[2:, :2])
                    d_skip = _hypot(s[2:, :2] - s[:-2, :2])
                    spike = (d_prev > far) & (d_next > far) & (d_skip < far)
                    if bool(spike.any()):
                        keep = torch.cat([torch.ones(1, dtype=torch.bool), ~spike, torch.ones(1, dtype=torch.bool)])
                        s = s[keep]
                kept.append(s)
            strokes = kept
        lengths = [s.shape[0] for s in strokes]
        pts = torch.cat(strokes)
        t = _spread_repeated_times(pts[:, 2].clone())
        pts = torch.cat([pts[:, :2], t.unsqueeze(1)], dim=1)
        return list(torch.split(pts, lengths))

    def _normalize(self, strokes: list[torch.Tensor]) -> list[torch.Tensor]:
        pts = torch.cat(strokes).clone()
        lengths = [s.shape[0] for s in strokes]
        ids = torch.repeat_interleave(torch.arange(len(strokes)), torch.tensor(lengths))
        xy = pts[:, :2] - pts[:, :2].mean(0)
        x_range = float(xy[:, 0].max() - xy[:, 0].min())
        if self.deskew and x_range > 0:
            slope = float((xy[:, 0] * xy[:, 1]).sum() / (xy[:, 0] * xy[:, 0]).sum())
            angle = math.atan(slope)
            c, s = math.cos(-angle), math.sin(-angle)
            xy = xy @ torch.tensor([[c, s], [-s, c]], dtype=xy.dtype)
        if self.deslant:
            seg = xy[1:] - xy[:-1]
            same = ids[1:] == ids[:-1]
            dx, dy = seg[same, 0], seg[same, 1]
            steep = dy.abs() > dx.abs()
            if int(steep.sum()) >= 5:
                shear = dx[steep] / dy[steep]
                weight = torch.sqrt(dx[steep] ** 2 + dy[steep] ** 2)
                order = torch.argsort(shear)
                cum = torch.cumsum(weight[order], 0)
                slant = shear[order][torch.searchsorted(cum, (cum[-1] / 2).reshape(1))[0]]
                xy = torch.stack([xy[:, 0] - slant * xy[:, 1], xy[:, 1]], dim=1)
        band = torch.quantile(xy[:, 1], torch.tensor([0.2, 0.8], dtype=xy.dtype))
        lo, hi = float(band[0]), float(band[1])
        height = hi - lo
        ptp_x = float(xy[:, 0].max() - xy[:, 0].min())
        ptp_y = float(xy[:, 1].max() - xy[:, 1].min())
        if height <= 1e-3 * max(ptp_x, ptp_y):
            height = max(ptp_y, ptp_x / 10, 1e-6)
        y = (xy[:, 1] - (lo + hi) / 2) / height
        x = (xy[:, 0] - xy[:, 0].min()) / height
        t = pts[:, 2] - pts[0, 2]
        return list(torch.split(torch.stack([x, y, t], dim=1), lengths))

    def _resample(self, strokes: list[torch.Tensor]) -> list[torch.Tensor]:
        arcs = [torch.cat([torch.zeros(1, dtype=s.dtype), torch.cumsum(_hypot(s[1:, :2] - s[:-1, :2]), 0)])
                for s in strokes]
        counts: list[int] = []
        for arc in arcs:
            length = float(arc[-1])
            if not math.isfinite(length):
                raise ValueError("ink coordinates too large to normalise: not pen data")
            counts.append(max(int(min(math.ceil(length / self.spacing), 2.0**62)), 1) if length > 0 else 0)
        if sum(counts) + len(arcs) > self.max_points:
            raise ValueError("too many points after resampling: not a line of handwriting")
        out: list[torch.Tensor] = []
        for i, s in enumerate(strokes):
            arc, n = arcs[i], counts[i]
            at = torch.linspace(0.0, float(arc[-1]), n + 1, dtype=s.dtype) if n > 0 else torch.zeros(1, dtype=s.dtype)
            out.append(torch.stack([_interp(at, arc, s[:, k]) for k in range(3)], dim=1))
        return out

    def forward(self, strokes: list[torch.Tensor]) -> torch.Tensor:
        strokes = [s.to(torch.float64).reshape(-1, 3) for s in strokes]
        for s in strokes:
            if s.numel() > 0 and not bool((s.abs() < self.max_magnitude).all()):
                raise ValueError("coordinates or times beyond 1e15: not pen data")
        strokes = self._resample(self._normalize(self._repair(strokes)))
        pts = torch.cat(strokes)
        lengths = [s.shape[0] for s in strokes]
        ids = torch.repeat_interleave(torch.arange(len(strokes)), torch.tensor(lengths))
        delta = pts - torch.cat([pts[:1], pts[:-1]])
        change = ids[1:] != ids[:-1]
        start = torch.cat([torch.ones(1, dtype=torch.bool), change]).to(pts.dtype)
        end = torch.cat([change, torch.ones(1, dtype=torch.bool)]).to(pts.dtype)
        feats = torch.cat([delta, end.unsqueeze(1), start.unsqueeze(1)], dim=1).to(torch.float32)
        if not bool(torch.isfinite(feats).all()):
            raise ValueError("non-finite ink features (degenerate coordinates or times)")
        return feats
