"""What a corpus type's error rates are called, and the further rates it reports beside the main one.

Speech on TIMIT is scored in phones (PER); handwriting in characters (CER), with a word error rate (WER) beside it.
A corpus source says so with class attributes: ``metric`` (default "PER") and ``extra_metrics`` ({name: symbol
mapping applied to references and hypotheses before aligning}). Train, evaluate and results.json use these names.
"""

from __future__ import annotations

from data_prep.corpora import SOURCES, resolve_units
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.scoring.levenshtein import ErrorCounts, align


def metric_name(kind: str, units: str = "") -> str:
    """Name of the main error rate for a corpus type: its source's ``metric``, else WER for character and BPE
    units (text corpora score words) and PER for phones."""
    source = SOURCES.get(kind)
    if source is not None and source.metric:
        return source.metric
    return "WER" if resolve_units(kind, units) in ("chars", "bpe") else "PER"


def extra_rates(kind: str, split: FeatureSplit, hyp_ids: list[list[int]], symbols: list[str]) -> dict[str, float]:
    """Further error rates (percent, rounded to 0.01) of decoded ids against a split's references, by name."""
    out = {}
    source = SOURCES.get(kind)
    for name, mapping in (source.extra_metrics if source is not None else {}).items():
        total = ErrorCounts()
        for ref_text, ids in zip(split.refs, hyp_ids, strict=True):
            total += align(mapping(ref_text.split()), mapping([symbols[i] for i in ids]))[1]
        out[name] = round(total.rate * 100, 2)
    return out
