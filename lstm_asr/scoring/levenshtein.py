"""Error rates by Levenshtein alignment, following Kaldi ``compute-wer`` / sclite conventions.

Substitutions, deletions and insertions all cost 1; the rate over a set is the total of errors divided by the
total of reference tokens (not the mean of per-utterance rates). Among equally cheap alignments the
backtrace prefers a match/substitution, then a deletion, then an insertion, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Op = tuple[str, str | None, str | None]


@dataclass
class ErrorCounts:
    """Totals of an alignment: reference length and substitution/deletion/insertion counts."""

    ref_tokens: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0

    @property
    def errors(self) -> int:
        """S + D + I."""
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        """(S + D + I) / N, or 0.0 when there is no reference token."""
        return self.errors / self.ref_tokens if self.ref_tokens else 0.0

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(
            self.ref_tokens + other.ref_tokens,
            self.sub + other.sub,
            self.dele + other.dele,
            self.ins + other.ins,
        )

    def __iadd__(self, other: ErrorCounts) -> ErrorCounts:
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        self.ref_tokens += other.ref_tokens
        self.sub += other.sub
        self.dele += other.dele
        self.ins += other.ins
        return self

    def to_dict(self) -> dict[str, int | float]:
        """Counts plus ``errors`` and ``rate``, ready for JSON."""
        return {
            "ref_tokens": self.ref_tokens,
            "sub": self.sub,
            "dele": self.dele,
            "ins": self.ins,
            "errors": self.errors,
            "rate": self.rate,
        }


def _cost_matrix(ref: Sequence[str], hyp: Sequence[str]) -> np.ndarray:
    """Edit-distance table D[i, j] = cost of aligning ref[:i] with hyp[:j].

    One numpy row per reference token. Within a row, the insertion recurrence
    D[i, j] = min(c[j], D[i, j-1] + 1) unrolls to min_k<=j (c[k] + j - k) = j + cummin(c[k] - k), so a
    cumulative minimum replaces the loop over hypothesis tokens.
    """
    vocab: dict[str, int] = {}
    hyp_ids = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], dtype=np.int64)
    m = len(hyp)
    cols = np.arange(m + 1, dtype=np.int64)
    table = np.empty((len(ref) + 1, m + 1), dtype=np.int64)
    table[0] = cols
    for i, tok in enumerate(ref, start=1):
        prev = table[i - 1]
        cand = prev + 1  # deletion of ref[i-1]
        # -1 never equals a hypothesis id, so a ref token absent from hyp mismatches everywhere.
        mismatch = hyp_ids != vocab.get(tok, -1)
        np.minimum(cand[1:], prev[:-1] + mismatch, out=cand[1:])
        table[i] = cols + np.minimum.accumulate(cand - cols)
    return table


def align(ref: Sequence[str], hyp: Sequence[str]) -> tuple[list[Op], ErrorCounts]:
    """Minimum edit-distance alignment of ``hyp`` against ``ref``.

    Returns the operations in order as (op, ref_token, hyp_token) with op in "C" (correct), "S", "D" (hyp
    token None), "I" (ref token None), and the counts.
    """
    ref, hyp = list(ref), list(hyp)
    table = _cost_matrix(ref, hyp)
    ops: list[Op] = []
    counts = ErrorCounts(ref_tokens=len(ref))
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        cost = table[i, j]
        if i > 0 and j > 0:
            same = ref[i - 1] == hyp[j - 1]
            if table[i - 1, j - 1] + (0 if same else 1) == cost:
                ops.append(("C" if same else "S", ref[i - 1], hyp[j - 1]))
                counts.sub += 0 if same else 1
                i, j = i - 1, j - 1
                continue
        if i > 0 and table[i - 1, j] + 1 == cost:
            ops.append(("D", ref[i - 1], None))
            counts.dele += 1
            i -= 1
        else:
            ops.append(("I", None, hyp[j - 1]))
            counts.ins += 1
            j -= 1
    ops.reverse()
    return ops, counts


def score(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> ErrorCounts:
    """Total error counts of each hypothesis aligned to its reference; rate = (S+D+I)/N over the set."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    total = ErrorCounts()
    for ref, hyp in zip(refs, hyps, strict=True):
        total += align(ref, hyp)[1]
    return total


def format_alignment(ref: Sequence[str], hyp: Sequence[str]) -> str:
    """Three sclite-style lines (REF, HYP, EVAL) with aligned columns; ``***`` marks a gap."""
    ops, _ = align(ref, hyp)
    rows: list[list[str]] = [["REF:"], ["HYP:"], ["EVAL:"]]
    for op, r, h in ops:
        r_txt = "***" if r is None else r
        h_txt = "***" if h is None else h
        e_txt = "" if op == "C" else op
        width = max(len(r_txt), len(h_txt), len(e_txt))
        rows[0].append(r_txt.ljust(width))
        rows[1].append(h_txt.ljust(width))
        rows[2].append(e_txt.ljust(width))
    label_width = max(len(row[0]) for row in rows)
    return "\n".join(" ".join([row[0].ljust(label_width), *row[1:]]).rstrip() for row in rows)
