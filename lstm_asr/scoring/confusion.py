"""Where the errors are: a confusion matrix of the scored symbols and error rates per phone class.

The matrix counts the pairs of the scoring alignment (the same Levenshtein alignment the error rate comes from):
rows are reference symbols, columns hypothesis symbols, the diagonal the correct ones; a deletion is counted in the
extra column ``(del)`` of its reference row, an insertion in the extra row ``(ins)`` of its hypothesis column. So
row sums are the reference counts, and S, D, I are read off the matrix exactly.

Phone classes (the 39 scoring phones of TIMIT, Lee & Hon 1989), after the usual broad classes: vowels (diphthongs
and r-coloured vowels included), stops (affricates jh, ch and the flap dx included), fricatives (hh included),
nasals, semivowels (glides and liquids) and silence. A class's error rate is (S + D + I) / N over reference
tokens of the class, the insertions being those whose hypothesis symbol is in the class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_asr.scoring.levenshtein import align

DEL, INS = "(del)", "(ins)"

PHONE_CLASSES: dict[str, tuple[str, ...]] = {
    "vowels": ("iy", "ih", "eh", "ae", "ah", "uw", "uh", "aa", "ey", "ay", "oy", "aw", "ow", "er"),
    "stops": ("b", "d", "g", "p", "t", "k", "dx", "jh", "ch"),
    "fricatives": ("s", "sh", "z", "f", "th", "v", "dh", "hh"),
    "nasals": ("m", "n", "ng"),
    "semivowels": ("l", "r", "w", "y"),
    "silence": ("sil",),
}
_CLASS_OF = {p: c for c, phones in PHONE_CLASSES.items() for p in phones}


@dataclass
class Confusions:
    """Counts of aligned (reference, hypothesis) pairs; ``DEL`` and ``INS`` stand for the missing side."""

    symbols: list[str]  # every reference or hypothesis symbol seen, sorted (classes first for phones)
    counts: np.ndarray  # (len(symbols) + 1, len(symbols) + 1): rows ref + INS, columns hyp + DEL
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def rows(self) -> list[str]:
        return [*self.symbols, INS]

    @property
    def cols(self) -> list[str]:
        return [*self.symbols, DEL]

    def top_confusions(self, k: int = 15) -> list[tuple[str, str, int]]:
        """The ``k`` most frequent errors (substitutions, deletions, insertions) as (ref, hyp, count)."""
        errs = [(r, h, n) for (r, h), n in self.pairs.items() if r != h]
        return sorted(errs, key=lambda x: (-x[2], x[0], x[1]))[:k]


def _symbol_order(symbols: set[str]) -> list[str]:
    """Phones grouped by class in :data:`PHONE_CLASSES` order, anything else after them, alphabetically."""
    ordered = [p for phones in PHONE_CLASSES.values() for p in phones if p in symbols]
    return ordered + sorted(symbols - set(ordered))


def confusions(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> Confusions:
    """The confusion matrix of a scored set (symbols as scored, e.g. TIMIT folded to 39)."""
    pairs: dict[tuple[str, str], int] = {}
    for ref, hyp in zip(refs, hyps, strict=True):
        for _, r, h in align(ref, hyp)[0]:
            key = (INS if r is None else r, DEL if h is None else h)
            pairs[key] = pairs.get(key, 0) + 1
    symbols = _symbol_order({s for pair in pairs for s in pair} - {DEL, INS})
    row = {s: i for i, s in enumerate([*symbols, INS])}
    col = {s: i for i, s in enumerate([*symbols, DEL])}
    counts = np.zeros((len(symbols) + 1, len(symbols) + 1), dtype=np.int64)
    for (r, h), n in pairs.items():
        counts[row[r], col[h]] += n
    return Confusions(symbols, counts, pairs)


def class_rates(conf: Confusions) -> dict[str, dict[str, float | int]]:
    """Per phone class: reference tokens N, S, D, I and the error rate in percent (classes with N > 0 or I > 0)."""
    out: dict[str, dict[str, float | int]] = {}
    for name in PHONE_CLASSES:
        n = s = d = i = 0
        for (r, h), c in conf.pairs.items():
            if _CLASS_OF.get(r) == name:
                n += c
                s += c if h not in (r, DEL) else 0
                d += c if h == DEL else 0
            elif r == INS and _CLASS_OF.get(h) == name:
                i += c
        if n or i:
            out[name] = {"ref_tokens": n, "sub": s, "dele": d, "ins": i,
                         "rate": round(100 * (s + d + i) / n, 2) if n else float("inf")}
    return out


def is_phone_set(symbols: Sequence[str]) -> bool:
    """True when every symbol is one of the 39 scoring phones (so the classes apply)."""
    return bool(symbols) and all(s in _CLASS_OF for s in symbols)


def draw_confusions(conf: Confusions, out: Path, title: str = "") -> Path:
    """A heatmap of the matrix (row-normalised colour, counts written in the cells that have errors), as PNG or SVG
    by ``out``'s suffix. Needs matplotlib (the ``plot`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from lstm_asr.errors import LstmAsrError

        raise LstmAsrError("the confusion-matrix figure needs matplotlib: pip install 'lstm-asr[plot]'") from None
    counts = conf.counts.astype(float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(conf.rows)
    size = max(6.0, 0.28 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    try:
        image = ax.imshow(share, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(n), conf.cols, rotation=90, fontsize=7)
        ax.set_yticks(range(n), conf.rows, fontsize=7)
        ax.set_xlabel("hypothesis")
        ax.set_ylabel("reference")
        if title:
            ax.set_title(title)
        for r in range(n):  # counts of the errors (off-diagonal), so the big confusions can be read off
            for c in range(n):
                if r != c and counts[r, c] >= max(3, counts.sum() / 2000):
                    ax.text(c, r, str(int(counts[r, c])), ha="center", va="center", fontsize=5, color="white")
        fig.colorbar(image, ax=ax, fraction=0.04, label="share of the reference row")
        fig.tight_layout()
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out
