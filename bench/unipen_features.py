"""UNIPEN: how alike the devices look after each ink normalisation step, without training a model.

A recogniser that must read every site's tablet wants a character to come out about the same size and speed from
each of them. This script takes a fixed sample of words per site (the first ``--files`` index files of each site,
up to ``--words`` words each), featurises them under several front-end settings, and reports, per setting, the
spread across sites (coefficient of variation of the per-site medians) of:

- ``frames/char``: feature frames per label character (after resampling: trace length in core heights per
  character; without size normalisation, in the device's units or mm);
- ``height``: the normalised ink's height (5-95% of y) in the front end's unit;
- ``dt@start``: the median dt of a stroke's first point (the pen-up time; 0 when it is left out).

Smaller spreads mean the devices look more alike. Sites that state no resolution are left out (millimetres cannot
be had for them), so every row compares the same words. Run from the repository root::

    .venv/bin/python bench/unipen_features.py --corpus data/unipen
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import benchlib
import numpy as np

from data_prep.unipen import UnipenOptions, UnipenSource, read_unipen
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink
from lstm_asr.errors import LstmAsrError

SETTINGS = {
    "raw units, no size, no resampling": InkFeatureConfig(spacing=0.0, size=False, deskew=False, deslant=False),
    "mm (resolution), no size, no resampling": InkFeatureConfig(spacing=0.0, size=False, resolution=True,
                                                                deskew=False, deslant=False),
    "mm, resampled every 0.5 mm": InkFeatureConfig(spacing=0.5, size=False, resolution=True, deskew=False,
                                                   deslant=False),
    "core height (before: point percentiles)": InkFeatureConfig(spacing=0.3),
    "core height, arc-weighted": InkFeatureConfig(spacing=0.3, arc_weighted=True),
    "all device options (recipes/unipen)": InkFeatureConfig(spacing=0.3, resolution=True, arc_weighted=True,
                                                            pen_up_time=False),
}


def sample(root: Path, files: int, words: int) -> dict[str, list]:
    rows = UnipenSource(root, UnipenOptions()).listing().rows
    by_site: dict[str, dict[Path, list]] = defaultdict(dict)
    for row in rows:
        by_site[row[1]].setdefault(row[3], []).append(row)
    return {site: [r for f in sorted(fs)[:files] for r in fs[f][:words]] for site, fs in sorted(by_site.items())}


def cv(values: list[float]) -> float:
    v = np.asarray(values, dtype=np.float64)
    if len(v) and not v.any():  # all 0 (the pen-up time left out): no spread at all
        return 0.0
    return float(np.std(v) / np.mean(v)) if len(v) and np.mean(v) > 0 else float("nan")


def main() -> None:
    ap = benchlib.parser(__doc__.splitlines()[0], threads=None)
    ap.add_argument("--corpus", default="data/unipen")
    ap.add_argument("--files", type=int, default=2, help="index files per site")
    ap.add_argument("--words", type=int, default=15, help="words per index file")
    args = ap.parse_args()
    start = time.perf_counter()
    chosen = sample(Path(args.corpus), args.files, args.words)
    inks: dict[str, list] = {site: [] for site in chosen}
    unstated = set()
    for site, rows in chosen.items():
        for _, _, _, f, seg, _ in rows:
            try:
                ink = read_unipen(f, seg.delineation)[0]
            except LstmAsrError:
                continue
            if ink.x_per_inch <= 0 or ink.y_per_inch <= 0:
                unstated.add(site)  # no resolution: millimetres cannot be had; left out so all rows compare
                continue
            inks[site].append((ink, len(seg.label.replace(" ", ""))))
    result: dict = {"config": benchlib.config(args), "sites": sum(bool(v) for v in inks.values()),
                    "sites_without_resolution": sorted(unstated), "words": sum(len(v) for v in inks.values()),
                    "settings": {}}
    for name, cfg in SETTINGS.items():
        per_site = defaultdict(list)
        for items in inks.values():
            fpc, height, dt0 = [], [], []
            for ink, chars in items:
                try:
                    feats, norm = featurize_ink(ink, cfg)
                except LstmAsrError:
                    continue
                y = norm.points()[:, 1]
                fpc.append(len(feats) / max(chars, 1))
                height.append(float(np.percentile(y, 95) - np.percentile(y, 5)))
                starts = feats[1:][feats[1:, 4] == 1, 2]
                if len(starts):
                    dt0.append(float(np.median(starts)))
            if fpc:
                per_site["frames/char"].append(float(np.median(fpc)))
                per_site["height"].append(float(np.median(height)))
                per_site["dt@start"].append(float(np.median(dt0)) if dt0 else 0.0)
        result["settings"][name] = {k: {"cv_across_sites": round(cv(v), 3), "median": round(float(np.median(v)), 4)}
                                    for k, v in per_site.items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    benchlib.emit(result, args.json)
    rows = [(name, r["frames/char"]["cv_across_sites"], r["height"]["cv_across_sites"],
             r["dt@start"]["cv_across_sites"]) for name, r in result["settings"].items()]
    benchlib.print_table(rows, [("setting", ""), ("frames/char CV", ">.3f"), ("height CV", ">.3f"),
                                ("dt@start CV", ">.3f")], markdown=True)


if __name__ == "__main__":
    main()
