"""An sclite-like summary of a scored set: per-speaker and overall counts of correct words, substitutions,
deletions, insertions, error rate and sentence error rate; for word-scored outputs also the character error rate.

The layout follows sclite's ``.sys`` report (``SPKR | # Snt # Wrd | Corr Sub Del Ins Err S.Err``) with counts in
place of percentages for S/D/I so the totals can be checked by hand; rates are percentages of the reference
length. CER aligns the characters of the texts (words joined by single spaces, the space counted as a character,
as ESPnet does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lstm_asr.scoring.levenshtein import ErrorCounts, align


@dataclass
class SpeakerCounts:
    sentences: int = 0
    sentence_errors: int = 0
    counts: ErrorCounts = field(default_factory=ErrorCounts)

    def add(self, c: ErrorCounts) -> None:
        self.sentences += 1
        self.sentence_errors += int(c.errors > 0)
        self.counts += c


def text_chars(words: Sequence[str]) -> list[str]:
    """The characters of a word sequence as text: words joined by one space."""
    return list(" ".join(words))


def character_counts(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> ErrorCounts:
    """Character-level S/D/I totals of word sequences (CER = rate)."""
    total = ErrorCounts()
    for ref, hyp in zip(refs, hyps, strict=True):
        total += align(text_chars(ref), text_chars(hyp))[1]
    return total


def sclite_summary(speakers: Sequence[str], refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]],
                   unit: str = "Wrd", with_cer: bool = False) -> str:
    """The text of the summary table (one row per speaker, then the sum), plus a CER line when asked."""
    per: dict[str, SpeakerCounts] = {}
    total = SpeakerCounts()
    for spk, ref, hyp in zip(speakers, refs, hyps, strict=True):
        c = align(ref, hyp)[1]
        per.setdefault(spk, SpeakerCounts()).add(c)
        total.add(c)
    head = f"| {'SPKR':<12} | {'# Snt':>5} {'# ' + unit:>7} | {'Corr':>6} {'Sub':>5} {'Del':>5} {'Ins':>5} " \
           f"{'Err':>6} {'S.Err':>6} |"
    rule = "|" + "-" * (len(head) - 2) + "|"

    def row(name: str, s: SpeakerCounts) -> str:
        c = s.counts
        n = max(c.ref_tokens, 1)
        corr = c.ref_tokens - c.sub - c.dele
        s_err = 100 * s.sentence_errors / max(s.sentences, 1)
        return (f"| {name:<12} | {s.sentences:>5} {c.ref_tokens:>7} | {100 * corr / n:>5.1f}% {c.sub:>5} "
                f"{c.dele:>5} {c.ins:>5} {100 * c.rate:>5.1f}% {s_err:>5.1f}% |")

    lines = [rule, head, rule, *(row(spk, s) for spk, s in sorted(per.items())), rule, row("Sum", total), rule]
    name = {"Wrd": "WER", "Chr": "CER"}.get(unit, "error rate")
    c = total.counts
    lines.append(f"{name} {100 * c.rate:.2f}% [ {c.errors} / {c.ref_tokens}, {c.ins} ins, {c.dele} del, {c.sub} sub ]")
    if with_cer:
        cc = character_counts(refs, hyps)
        lines.append(f"CER {100 * cc.rate:.2f}% [ {cc.errors} / {cc.ref_tokens}, {cc.ins} ins, {cc.dele} del, "
                     f"{cc.sub} sub ]")
    return "\n".join(lines) + "\n"
