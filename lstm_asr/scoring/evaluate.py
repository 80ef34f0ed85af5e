"""Scoring decoded splits: PER/CER/WER with substitutions, deletions and insertions, and the files that show them.

Scoring follows Kaldi/sclite: one Levenshtein alignment per utterance, counts summed over the set,
rate = (S + D + I) / N. For TIMIT both reference and hypothesis are folded from 61 to 39 phones first and ``sil``
counts like any other phone; every reported figure carries that convention with it. A reference symbol outside
the model's inventory (a dev/test transcript's, never seen in training) is scored as it is, an error no model can
avoid, and the scores name such symbols (``unknown_symbols``: each one's occurrences, and the utterances holding
them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.tokens import unknown_symbols
from lstm_asr.errors import reporting_write_errors
from lstm_asr.scoring.confusion import class_rates, confusions, draw_confusions, is_phone_set
from lstm_asr.scoring.error_report import character_counts, sclite_summary
from lstm_asr.scoring.html_report import AudioFn, write_report
from lstm_asr.scoring.levenshtein import ErrorCounts, align, format_alignment

_TEXT = ("character and BPE outputs glued back to text and scored as words (WER; CER in sclite.txt); "
         "phone outputs scored as phones")
CONVENTIONS = {
    "timit": "TIMIT 61 phones (q removed) folded to 39 (Lee & Hon 1989) for scoring; sil scored like any phone",
    "kaldi_dir": _TEXT, "librispeech": _TEXT, "manifest": _TEXT,
    "ondb": "characters, the space between words included (CER); WER on the words glued back from them",
    "unipen": "characters, the space between words included (CER); WER on the words glued back from them",
    **dict.fromkeys(("arctic", "audio_folder", "speechocean762"),
                    "phones: TIMIT-61 from the corpus's phone labels or its words (data_prep/lexicon.py), folded to 39 "
                    "for scoring, sil scored like any phone; characters and BPE scored as words"),
}


@dataclass
class SplitScore:
    counts: ErrorCounts
    hyps: list[list[str]]  # decoded symbols per utterance, split order
    refs: list[list[str]]
    # The references' symbols outside the model's inventory (lstm_asr/data/tokens.py: unknown_symbols).
    unknown: dict = field(default_factory=lambda: {"symbols": {}, "utterances": 0})

    def to_dict(self) -> dict:
        d = {**self.counts.to_dict(), "utterances": len(self.hyps)}
        if self.unknown["symbols"]:
            d["unknown_symbols"] = self.unknown
        return d


def score_split(split: FeatureSplit, hyp_ids: list[list[int]], symbols: list[str],
                score_units: Callable[[list[str]], list[str]]) -> SplitScore:
    """Score decoded ids against the split's references after mapping both with ``score_units``. Reference
    symbols outside ``symbols`` are scored as they are (no hypothesis can match them) and counted in ``unknown``."""
    total = ErrorCounts()
    hyps, refs = [], []
    for ref_text, ids in zip(split.refs, hyp_ids, strict=True):
        ref = score_units(ref_text.split())
        hyp = score_units([symbols[i] for i in ids])
        _, counts = align(ref, hyp)
        total += counts
        hyps.append(hyp)
        refs.append(ref)
    return SplitScore(total, hyps, refs, unknown_symbols((r.split() for r in split.refs), symbols))


def write_decode_dir(out: Path, split: FeatureSplit, score: SplitScore, extra: dict) -> None:
    """Kaldi-style outputs: ``hyp.txt`` and ``ref.txt`` (utt-id then symbols), sclite-style
    ``alignments.txt`` per utterance, and ``scores.json``. The file names are fixed (utterance ids only appear
    inside the files); a failed write is a one-line LstmAsrError naming ``out``."""
    with reporting_write_errors(out, "decoding results"):
        _write_decode_files(out, split, score, extra)


def _write_decode_files(out: Path, split: FeatureSplit, score: SplitScore, extra: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "hyp.txt", "w") as h, open(out / "ref.txt", "w") as r, open(out / "alignments.txt", "w") as a:
        for utt, ref, hyp in zip(split.ids, score.refs, score.hyps, strict=True):
            h.write(f"{utt} {' '.join(hyp)}\n")
            r.write(f"{utt} {' '.join(ref)}\n")
            _, c = align(ref, hyp)
            a.write(f"{utt}  N={c.ref_tokens} S={c.sub} D={c.dele} I={c.ins}\n{format_alignment(ref, hyp)}\n\n")
    # sclite-style per-speaker summary; speech character/BPE outputs are scored as words (metric WER), with a CER
    # beside it computed from the words' text.
    words = extra.get("metric") == "WER"
    unit = "Wrd" if words else "Chr" if extra.get("metric") == "CER" else "Sym"
    (out / "sclite.txt").write_text(sclite_summary(split.speakers, score.refs, score.hyps, unit=unit,
                                                   with_cer=words))
    if words:
        extra = {**extra, "cer": character_counts(score.refs, score.hyps).rate}
    (out / "scores.json").write_text(json.dumps({**score.to_dict(), **extra}, indent=2) + "\n")


def per_speaker(split: FeatureSplit, score: SplitScore) -> dict[str, float]:
    """Error rate per speaker (sclite's per-speaker summary)."""
    acc: dict[str, ErrorCounts] = {}
    for spk, ref, hyp in zip(split.speakers, score.refs, score.hyps, strict=True):
        acc.setdefault(spk, ErrorCounts())
        acc[spk] += align(ref, hyp)[1]
    return {s: round(c.rate * 100, 2) for s, c in sorted(acc.items())}


def frame_count(split: FeatureSplit) -> int:
    return int(np.sum(split.num_frames))


def write_error_analysis(out: Path, split: FeatureSplit, score: SplitScore, metric: str, title: str,
                         audio: AudioFn | None = None) -> dict:
    """Beside a decode folder's files: ``confusion.png``/``.svg`` (heatmap), ``confusion.tsv`` (the counts),
    ``classes.json`` (per phone class rates, phone models only) and ``report.html``. Returns the class rates.

    Without matplotlib (the ``plot`` extra) the figures and the page are left out, with a note."""
    conf = confusions(score.refs, score.hyps)
    classes = class_rates(conf) if is_phone_set(conf.symbols) else {}
    with reporting_write_errors(out, "the error analysis"):
        out.mkdir(parents=True, exist_ok=True)
        rows = ["ref\\hyp\t" + "\t".join(conf.cols)]
        rows += [r + "\t" + "\t".join(str(int(x)) for x in line) for r, line in zip(conf.rows, conf.counts,
                                                                                   strict=True)]
        (out / "confusion.tsv").write_text("\n".join(rows) + "\n")
        (out / "classes.json").write_text(json.dumps(classes, indent=2) + "\n")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"{out}: confusion figure and report.html need matplotlib: pip install 'lstm-asr[plot]'")
        return classes
    with reporting_write_errors(out, "the error analysis"):
        draw_confusions(conf, out / "confusion.png", title)
    write_report(out / "report.html", title=title, ids=split.ids, speakers=split.speakers, refs=score.refs,
                 hyps=score.hyps, counts=score.counts, metric=metric, conf=conf, classes=classes, audio=audio,
                 figure_dir=out)
    return classes
