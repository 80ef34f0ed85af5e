"""What a recipe trains, selects and tests on: one corpus (``corpus:``) or the union of several (``corpora:``).

A multi-corpus recipe's corpora are each prepared into their own store, as a single-corpus recipe of that corpus
would (``lstm_asr/data/prep.py``), and read together:

- **tokens**: the union of the training corpora's inventories, the first training corpus's tokens first, then each
  other's new ones in order. Every corpus must train the same kind of units (phones, chars, ...) with the same
  error rate; a mismatch is a one-line error.
- **train**: the training splits concatenated (:class:`~lstm_asr.data.split_views.ConcatSplit`); **dev**: the dev
  splits concatenated (the best model is chosen on their pooled error rate); **tests** (and **devs**): each
  corpus's own split, scored and reported on its own line with its own scoring convention.
- **weights** (:meth:`TrainingData.epoch_indices`): with ``weight`` set on the training corpora, an epoch draws
  as many utterances as the union has (trainable ones), corpus ``k`` getting ``round(N * w_k / sum(w))`` of them
  (largest remainders, so they add up to N): every one of its utterances ``floor(m_k / n_k)`` times, plus
  ``m_k mod n_k`` of them drawn without replacement, seeded by (training.seed, epoch). So a weight is the
  corpus's share of the utterances trained on per epoch, exactly; a small corpus is repeated, a large one
  subsampled (a different subset every epoch). Without weights, every utterance once per epoch, as today.
- **sentence exclusion** (``training.exclude_eval_sentences``; on by default for ``corpora:``): a training
  utterance whose normalised transcript (the reader's word transcript, ``CorpusItem.text``, lower-cased with
  punctuation removed; the label sequence when the reader gives no text) equals that of any dev or test utterance
  of any corpus of the recipe is dropped from training, and counted per corpus. Two corpora reading the same
  prompts (CMU ARCTIC and Kathleen) then never train on a sentence that is tested.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.corpora import resolve_units, score_units_for, source_class
from data_prep.sources import ScoreMapping
from lstm_asr.errors import LstmAsrError
from lstm_asr.recipe import CorpusEntry, Recipe, corpora_of

_PUNCT = re.compile(r"[^\w\s']+")


def sentence_key(text: str) -> str:
    """A transcript normalised for comparison: lower case, punctuation removed, single spaces."""
    return " ".join(_PUNCT.sub(" ", text.lower()).replace(" '", " ").split())


def utterance_keys(split: Any) -> list[tuple[str, str]]:
    """Per utterance: ("text", normalised word transcript) when prep stored one, else ("labels", its labels)."""
    texts = split.index.get("texts") or [""] * len(split.refs)
    return [("text", sentence_key(t)) if t else ("labels", " ".join(r.split())) for t, r in zip(texts, split.refs,
                                                                                                 strict=True)]


def item_keys(items: Sequence[Any]) -> list[tuple[str, str]]:
    """:func:`utterance_keys` of a reader's items (``CorpusItem``) before prep: the keys their stored split gives."""
    return [("text", sentence_key(it.text)) if it.text else ("labels", " ".join(it.labels)) for it in items]


@dataclass
class CorpusSplits:
    """One corpus of the recipe: its settings and its prepared splits (None where it gives none)."""

    entry: CorpusEntry
    train: Any = None
    dev: Any = None
    test: Any = None


@dataclass
class TrainingData:
    """The splits and token inventory a recipe trains with (see the module docstring)."""

    train: Any
    dev: Any
    test: Any  # the test splits pooled (one corpus: its test split)
    tests: dict[str, Any]  # corpus name ("" for a corpus: recipe) -> its test split
    devs: dict[str, Any]
    tokens: list[str]
    corpora: list[CorpusSplits]
    score_units: dict[str, ScoreMapping]  # corpus name -> its scoring mapping
    multi: bool = False
    weights: np.ndarray | None = None  # per training part (corpus), when given
    excluded: np.ndarray | None = None  # bool per training utterance: dropped by the sentence rule
    excluded_counts: dict[str, int] = field(default_factory=dict)

    def keep_mask(self) -> np.ndarray:
        """True for the training utterances the sentence rule keeps."""
        return np.ones(len(self.train), dtype=bool) if self.excluded is None else ~self.excluded

    def epoch_indices(self, trainable: np.ndarray, seed: int, epoch: int) -> np.ndarray:
        """The training utterances (indices, repeats allowed) of one epoch: ``trainable`` itself without weights,
        else drawn by weight as the module docstring says (the same for the same seed and epoch)."""
        trainable = np.asarray(trainable, dtype=np.int64)
        if self.weights is None or not self.multi:
            return trainable
        return weighted_epoch(trainable, self.train.part[trainable], self.weights, seed, epoch,
                              [c.entry.name for c in self.corpora if c.train is not None])


def weighted_epoch(indices: np.ndarray, parts: np.ndarray, weights: np.ndarray, seed: int, epoch: int,
                   names: list[str] | None = None) -> np.ndarray:
    """``len(indices)`` draws from ``indices``, ``parts[j]`` naming the group of ``indices[j]``: group ``k`` gets
    ``round(N * w_k / sum(w))`` of them (largest remainders), by whole repeats plus a seeded subset."""
    n_total = len(indices)
    weights = np.asarray(weights, dtype=np.float64)
    counts = group_counts(n_total, weights)
    rng = np.random.default_rng([seed, epoch, 0x6D6978])  # "mix": its own stream, apart from the batching's
    out = []
    for k, m in enumerate(counts):
        group = indices[parts == k]
        if m and not len(group):
            name = names[k] if names else str(k)
            raise LstmAsrError(f"corpus {name}: weight {weights[k]:g} but no trainable utterance to draw")
        if not m:
            continue
        reps, rest = divmod(int(m), len(group))
        out.append(np.tile(group, reps))
        if rest:
            out.append(rng.choice(group, size=rest, replace=False))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def group_counts(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights`` in whole numbers that add up to it (largest remainders)."""
    share = total * np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
    counts = np.floor(share).astype(np.int64)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def union_tokens(inventories: list[list[str]]) -> list[str]:
    """The labels of every inventory (blank first in each, and in the union), first appearance first."""
    seen = dict.fromkeys(inventories[0])
    for inv in inventories[1:]:
        seen.update(dict.fromkeys(inv))
    return list(seen)


def _token_map(theirs: list[str], union: list[str]) -> np.ndarray:
    where = {t: i for i, t in enumerate(union)}
    return np.asarray([where.get(t, -1) for t in theirs], dtype=np.int64)


def check_units(corpora: list[CorpusEntry]) -> None:
    """Every corpus trains the same kind of units with the same main error rate (one-line error otherwise)."""
    first = corpora[0]
    units0, metric0 = resolve_units(first.type, first.units), _metric(first)
    for i, c in enumerate(corpora[1:], start=1):
        units, metric = resolve_units(c.type, c.units), _metric(c)
        if (units, metric) != (units0, metric0):
            raise LstmAsrError(f"corpora[{i}] ({c.name}, {c.type}): trains {units} scored as {metric}, but "
                               f"{first.name} ({first.type}) trains {units0} scored as {metric0}; one model has one "
                               f"kind of output (set corpora[{i}].units)")


def _metric(c: CorpusEntry) -> str:
    """The main error rate's name (as lstm_asr.scoring.error_rates.metric_name, which this layer cannot import)."""
    metric = source_class(c.type).metric
    return metric or ("WER" if resolve_units(c.type, c.units) in ("chars", "bpe") else "PER")


def exclude_eval_sentences(recipe: Recipe) -> bool:
    """Whether the sentence rule applies: ``training.exclude_eval_sentences``, auto = for multi-corpus recipes."""
    value = recipe.training.exclude_eval_sentences
    return bool(recipe.corpora) if value == "auto" else bool(value)


def excluded_sentences(train: Any, evaluated: list[Any]) -> np.ndarray:
    """Bool per utterance of ``train``: its normalised transcript is one of ``evaluated``'s splits'."""
    held = {k for split in evaluated for k in utterance_keys(split)}
    return np.asarray([k in held for k in utterance_keys(train)], dtype=bool)


def load_training_data(recipe: Recipe, show_progress: bool = True) -> TrainingData:
    """Prepare (where needed) and open the recipe's splits, with the union inventory, weights and exclusions."""
    from lstm_asr.data.prep import load_splits

    splits = load_splits(recipe, show_progress=show_progress)
    entries = corpora_of(recipe)
    corpora = []
    for e in entries:
        def get(split: str, e: CorpusEntry = e) -> Any:
            return splits[f"{e.name}/{split}" if e.name else split] if split else None

        corpora.append(CorpusSplits(e, get(e.train_split), get(e.dev_split), get(e.test_split)))
    scoring = {c.entry.name: score_units_for(c.entry.type, c.entry.units) for c in corpora}
    evaluated = [s for c in corpora for s in (c.dev, c.test) if s is not None]
    if not recipe.corpora:  # one corpus: its splits as they are
        c = corpora[0]
        data = TrainingData(c.train, c.dev, c.test, {"": c.test}, {"": c.dev}, list(c.train.index["tokens"]), corpora,
                            scoring)
        if exclude_eval_sentences(recipe):
            data.excluded = excluded_sentences(c.train, [s for s in evaluated if s is not c.train])
            data.excluded_counts = {"": int(data.excluded.sum())}
        return data
    check_units(entries)
    training = [c for c in corpora if c.train is not None]
    tokens = union_tokens([list(c.train.index["tokens"]) for c in training])

    def concat(cs: list[CorpusSplits], role: str) -> Any:
        parts = [(c.entry.name, getattr(c, role), _token_map(list(getattr(c, role).index["tokens"]), tokens))
                 for c in cs if getattr(c, role) is not None]
        return ConcatSplit(parts, tokens, Path(recipe.features.store or ".") / role)

    from lstm_asr.data.split_views import ConcatSplit

    train = concat(training, "train")
    dev = concat(corpora, "dev")
    data = TrainingData(train, dev, concat(corpora, "test"),
                        {c.entry.name: c.test for c in corpora if c.test is not None},
                        {c.entry.name: c.dev for c in corpora if c.dev is not None}, tokens, corpora, scoring,
                        multi=True)
    if any(c.entry.weight > 0 for c in training):
        data.weights = np.asarray([c.entry.weight for c in training], dtype=np.float64)
    if exclude_eval_sentences(recipe):
        data.excluded = excluded_sentences(train, evaluated)
        data.excluded_counts = {c.entry.name: int(data.excluded[train.part == k].sum())
                                for k, c in enumerate(training)}
    return data
