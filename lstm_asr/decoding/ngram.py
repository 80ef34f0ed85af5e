"""Token n-gram language models: estimation (interpolated Kneser-Ney or Witten-Bell) and ARPA files.

An :class:`NgramLM` holds, for every order, the log10 probability of each stored n-gram and the log10 back-off
weight of each n-gram that is also a history -- exactly what an ARPA file stores, so writing and reading are
lossless up to the printed precision. Interpolated models fit ARPA's back-off form exactly: for a stored n-gram
the file holds the interpolated probability, and the back-off weight of a history is its interpolation weight
(the mass set aside for lower orders), so ``p(w | h) = bow(h) * p(w | h')`` for every unseen ``h w``.

Sentences are padded with ``<s>`` and ``</s>``; every order also gets the mass for unseen words by
interpolating the unigram level with a uniform distribution over the vocabulary (``</s>`` and ``<unk>``
included), so every vocabulary word -- e.g. each of a model's tokens, seen in the text or not -- has a
non-zero probability.

Units can be words, phones or characters: a sentence is any sequence of symbols.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lstm_asr.errors import LstmAsrError, read_user_text

if TYPE_CHECKING:
    from lstm_asr.recipe import Recipe

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROB = -99.0  # ARPA's conventional log10 "probability" of <s>, which is never predicted
METHODS = ("kneser-ney", "witten-bell")

Gram = tuple[str, ...]


@dataclass
class NgramLM:
    """A back-off n-gram model: ``probs[k][gram]`` and ``backoffs[k][gram]`` (log10) for ``k = 1 .. order``."""

    order: int
    probs: dict[int, dict[Gram, float]] = field(default_factory=dict)
    backoffs: dict[int, dict[Gram, float]] = field(default_factory=dict)

    @property
    def vocab(self) -> set[str]:
        """The words with a unigram entry (``<s>``, ``</s>`` and ``<unk>`` included when present)."""
        return {g[0] for g in self.probs.get(1, {})}

    def log10_prob(self, word: str, history: Sequence[str]) -> float:
        """log10 p(word | history) by ARPA back-off (only the last ``order - 1`` history words count).

        A word outside the vocabulary is scored as ``<unk>``.
        """
        if (word,) not in self.probs[1]:
            word = UNK
        hist = tuple(history)[max(0, len(history) - self.order + 1):]
        weight = 0.0
        while True:
            gram = (*hist, word)
            p = self.probs[len(gram)].get(gram)
            if p is not None:
                return weight + p
            if not hist:
                return weight + NO_PROB  # <unk> absent from the model
            weight += self.backoffs[len(hist)].get(hist, 0.0)
            hist = hist[1:]

    def score_sentence(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> float:
        """Total log10 probability of a sentence (``</s>`` included when ``eos``)."""
        history: list[str] = [BOS] if bos else []
        total = 0.0
        for w in [*words, EOS] if eos else list(words):
            total += self.log10_prob(w, history)
            history.append(w)
        return total

    def write_arpa(self, path: str | Path) -> None:
        """Write the model as an ARPA file (n-grams sorted, 7 significant digits like SRILM)."""
        path = Path(path)
        lines = ["", "\\data\\"]
        lines += [f"ngram {k}={len(self.probs[k])}" for k in range(1, self.order + 1)]
        for k in range(1, self.order + 1):
            lines += ["", f"\\{k}-grams:"]
            bows = self.backoffs.get(k, {})
            for gram in sorted(self.probs[k]):
                entry = f"{self.probs[k][gram]:.7g}\t{' '.join(gram)}"
                if gram in bows:
                    entry += f"\t{bows[gram]:.7g}"
                lines.append(entry)
        lines += ["", "\\end\\", ""]
        try:
            path.write_text("\n".join(lines), encoding="utf-8")
        except OSError as exc:
            raise LstmAsrError(f"{path}: cannot write ARPA file ({exc.strerror or exc})") from None


# --- estimation ---


def _count(sentences: Iterable[Sequence[str]], order: int) -> tuple[list[Counter], int]:
    """Raw counts of every n-gram of orders 1..N in the padded sentences, and the number of sentences."""
    counts = [Counter() for _ in range(order + 1)]  # index k: k-grams
    n = 0
    for sent in sentences:
        padded = [BOS, *sent, EOS]
        n += 1
        for k in range(1, order + 1):
            for i in range(len(padded) - k + 1):
                counts[k][tuple(padded[i:i + k])] += 1
    return counts, n


def _kn_discount(counts: Counter) -> float:
    """Absolute discount D = n1 / (n1 + 2 n2) from counts of counts (Ney et al. 1994), kept in (0, 1)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0 or n2 == 0:
        return 0.5  # too little data for the estimate (tiny or artificial texts)
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


def build_ngram(sentences: Iterable[Sequence[str]], order: int, method: str = "kneser-ney",
                vocab: Iterable[str] = ()) -> NgramLM:
    """Estimate an interpolated n-gram model of ``order`` from tokenised sentences.

    ``method`` is ``"kneser-ney"`` (absolute discounting, one discount per order from counts of counts; lower
    orders estimated from continuation counts, the number of distinct words preceding an n-gram) or
    ``"witten-bell"`` (each history sets aside mass in proportion to the number of distinct words it was
    seen followed by). ``vocab`` adds words that must be in the model even if the text never uses them.
    """
    if method not in METHODS:
        raise LstmAsrError(f"unknown smoothing {method!r} (use {' or '.join(METHODS)})")
    if order < 1:
        raise LstmAsrError(f"n-gram order must be >= 1, got {order}")
    raw, n_sent = _count(sentences, order)
    if n_sent == 0 or not raw[1]:
        raise LstmAsrError("no sentences to estimate a language model from")

    words = {g[0] for g in raw[1]} | set(vocab) | {EOS, UNK}
    words.discard(BOS)
    uniform = 1.0 / len(words)

    # The count each order is estimated from: raw counts at the top order and for n-grams starting with <s>
    # (nothing can precede <s>), continuation counts below the top for Kneser-Ney.
    used: list[Counter] = [Counter() for _ in range(order + 1)]
    for k in range(1, order + 1):
        if method == "kneser-ney" and k < order:
            cont = Counter(g[1:] for g in raw[k + 1])
            used[k] = Counter({g: (c if g[0] == BOS else cont[g]) for g, c in raw[k].items()})
        else:
            used[k] = Counter(raw[k])
        if k == 1:
            used[1].pop((BOS,), None)  # <s> is never predicted

    probs: dict[int, dict[Gram, float]] = {}
    backoffs: dict[int, dict[Gram, float]] = {}
    lower: dict[Gram, float] = {(w,): uniform for w in words}  # order-0 model: uniform, per word
    for k in range(1, order + 1):
        by_hist_total: dict[Gram, int] = defaultdict(int)
        by_hist_types: dict[Gram, int] = defaultdict(int)
        for g, c in used[k].items():
            if c > 0:
                by_hist_total[g[:-1]] += c
                by_hist_types[g[:-1]] += 1
        disc = _kn_discount(used[k]) if method == "kneser-ney" else 0.0
        gamma: dict[Gram, float] = {}
        for h, total in by_hist_total.items():
            types = by_hist_types[h]
            gamma[h] = disc * types / total if method == "kneser-ney" else types / (total + types)
        p_k: dict[Gram, float] = {}
        grams = list(used[k]) if k > 1 else [(w,) for w in sorted(words)]
        for g in grams:
            h = g[:-1]
            c = used[k].get(g, 0)
            low = lower[g[1:]] if k > 1 else uniform
            total = by_hist_total[h]
            if method == "kneser-ney":
                p = max(c - disc, 0.0) / total + gamma[h] * low
            else:
                p = (c + by_hist_types[h] * low) / (total + by_hist_types[h])
            p_k[g] = p
        probs[k] = {g: math.log10(p) for g, p in p_k.items() if p > 0}
        lower = p_k
        if k > 1:  # a history of order k is a stored (k-1)-gram: its interpolation weight is its back-off
            backoffs[k - 1] = {h: math.log10(gw) for h, gw in gamma.items() if gw > 0}
    probs[1][(BOS,)] = NO_PROB
    backoffs[order] = {}  # top-order n-grams are never histories
    return NgramLM(order, probs, backoffs)


def bigram_fusion_scores(lm: NgramLM, symbols: Sequence[str], weight: float, insertion: float = 0.0,
                         blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense shallow-fusion tables of a token LM for :func:`lstm_asr.decoding.ctc_decode.prefix_beam_search`.

    ``symbols`` are the model's tokens (``blank`` is skipped). Returns ``scores`` (V + 1, V) with
    ``weight * ln p(c | a) + insertion`` for history token ``a`` (row V: sentence start) and next token ``c``, and
    ``final`` (V + 1,) with ``weight * ln p(</s> | a)``. Only the last token is used as history (a bigram view;
    a higher-order model contributes its back-off bigram probabilities).
    """
    vocab = len(symbols)
    ln10 = math.log(10.0)
    hist = [*symbols, BOS]
    scores = np.full((vocab + 1, vocab), -np.inf)
    final = np.empty(vocab + 1)
    for a, h in enumerate(hist):
        if a == blank:
            continue
        for c, w in enumerate(symbols):
            if c != blank:
                scores[a, c] = weight * ln10 * lm.log10_prob(w, [h]) + insertion
        final[a] = weight * ln10 * lm.log10_prob(EOS, [h])
    final[blank] = 0.0
    return scores, final


# --- ARPA reading ---

# At most 18 digits: int() refuses strings of over 4300 digits (ValueError), and no real count is that large.
_SECTION = re.compile(r"^\\(\d{1,18})-grams:$")
_COUNT = re.compile(r"^ngram\s+(\d{1,18})\s*=\s*(\d{1,18})$")


def read_arpa(path: str | Path) -> NgramLM:
    """Read an ARPA back-off model; any malformed line is an error naming the file and line number."""
    path = Path(path)
    text = read_user_text(path, "ARPA file")

    def fail(lineno: int, problem: str) -> LstmAsrError:
        return LstmAsrError(f"{path}:{lineno}: {problem}")

    declared: dict[int, int] = {}
    probs: dict[int, dict[Gram, float]] = {}
    backoffs: dict[int, dict[Gram, float]] = {}
    state = "start"  # start -> data -> grams -> end
    k = 0
    lines = text.splitlines()
    for lineno, raw_line in enumerate(lines, start=1):
        line = raw_line.strip()
        if not line:
            continue
        if state == "start":
            if line == "\\data\\":
                state = "data"
                continue
            raise fail(lineno, f"expected '\\data\\' header, got {line[:40]!r}")
        if state == "data":
            m = _COUNT.match(line)
            if m:
                declared[int(m.group(1))] = int(m.group(2))
                continue
            if not declared:
                raise fail(lineno, f"expected 'ngram N=count' lines after '\\data\\', got {line[:40]!r}")
            state = "grams"
        if line == "\\end\\":
            state = "end"
            break
        m = _SECTION.match(line)
        if m:
            k = int(m.group(1))
            if k not in declared:
                raise fail(lineno, f"section \\{k}-grams: was not declared in the \\data\\ header")
            if k in probs:
                raise fail(lineno, f"section \\{k}-grams: appears twice")
            probs[k], backoffs[k] = {}, {}
            continue
        if k == 0:
            raise fail(lineno, f"expected a '\\N-grams:' section header, got {line[:40]!r}")
        fields = line.split()
        if len(fields) not in (k + 1, k + 2):
            raise fail(lineno, f"a {k}-gram entry needs a log10 probability, {k} words and an optional "
                               f"back-off weight; got {len(fields)} fields")
        try:
            prob = float(fields[0])
            bow = float(fields[k + 1]) if len(fields) == k + 2 else None
        except ValueError:
            raise fail(lineno, f"not a number in {line[:60]!r}") from None
        if math.isnan(prob) or prob > 1e-6:
            raise fail(lineno, f"log10 probability must be <= 0, got {fields[0]}")
        if bow is not None and (math.isnan(bow) or bow == math.inf):  # +inf + a -inf probability scores NaN
            raise fail(lineno, f"back-off weight must be a number below infinity, got {fields[k + 1]}")
        gram = tuple(fields[1:k + 1])
        probs[k][gram] = prob
        if bow is not None:
            backoffs[k][gram] = bow
    if state != "end":
        raise LstmAsrError(f"{path}:{len(lines)}: missing '\\end\\' (file truncated?)")
    for n, count in sorted(declared.items()):
        if n not in probs:
            raise LstmAsrError(f"{path}: header declares {count} {n}-grams but there is no \\{n}-grams: section")
        if len(probs[n]) != count:
            raise LstmAsrError(f"{path}: header declares {count} {n}-grams, the \\{n}-grams: section has "
                               f"{len(probs[n])}")
    order = max(declared)
    # Compare with 1..len(declared), not 1..order: a header claiming order 10^12 must not build a list that long.
    if sorted(declared) != list(range(1, len(declared) + 1)):
        raise LstmAsrError(f"{path}: n-gram orders {sorted(declared)[:10]} are not 1..{order}")
    return NgramLM(order, probs, backoffs)


def check_vocab(path: str | Path, lm: NgramLM, symbols: Iterable[str]) -> None:
    """Raise a one-line error naming the file (and its unigram section line) if ``symbols`` are not all in
    the model's vocabulary."""
    missing = [s for s in symbols if (s,) not in lm.probs[1]]
    if missing:
        line = _section_line(path, 1)
        shown = ", ".join(missing[:8]) + (", ..." if len(missing) > 8 else "")
        raise LstmAsrError(f"{path}:{line}: vocabulary misses {len(missing)} of the model's tokens: {shown}")


def _section_line(path: str | Path, k: int) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, start=1):
                if line.strip() == f"\\{k}-grams:":
                    return lineno
    except OSError:
        pass
    return 0


def read_sentences(path: str | Path, units: str = "words") -> list[list[str]]:
    """Sentences of a text file, one per non-empty line: whitespace-separated symbols, or characters (spaces
    dropped) when ``units == "chars"``."""
    path = Path(path)
    text = read_user_text(path, "text file")
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        out.append([c for c in line.strip() if not c.isspace()] if units == "chars" else line.split())
    if not out:
        raise LstmAsrError(f"{path}: no sentences (the file is empty)")
    return out


def recipe_training_sentences(recipe: Recipe) -> list[list[str]]:
    """The label sequences a recipe trains on, read from its corpora as prep reads them: the training split of its
    one ``corpus:``, or of every training corpus of ``corpora:`` (those with a ``train_split``), in order.

    Each corpus is opened with its own settings, so its labels are what training sees (units fitted on its own
    training texts, :meth:`~data_prep.text_corpus.TextCorpusSource.training_texts`). Where training leaves out the
    utterances whose sentence is a dev or test sentence of any corpus (``training.exclude_eval_sentences``, on by
    default for ``corpora:``), so does this: an LM must not learn the sentences the model is scored on."""
    from data_prep.corpora import open_source
    from lstm_asr.data.corpus_mix import exclude_eval_sentences, item_keys
    from lstm_asr.recipe import corpora_of

    entries = corpora_of(recipe)
    sources = {e.name: open_source(e.type, e.path, e) for e in entries}
    held: set[tuple[str, str]] = set()
    if exclude_eval_sentences(recipe):
        for e in entries:
            for split in dict.fromkeys(s for s in (e.dev_split, e.test_split) if s and s != e.train_split):
                held.update(item_keys(sources[e.name].split(split).items))
    sentences: list[list[str]] = []
    for e in entries:
        if not e.train_split:
            continue
        items = sources[e.name].split(e.train_split).items
        sentences += [list(it.labels) for it, key in zip(items, item_keys(items), strict=True) if key not in held]
    return sentences


def experiment_sentences(exp: str | Path) -> tuple[list[list[str]], list[str]]:
    """The training label sequences of an experiment's corpus or corpora (:func:`recipe_training_sentences`) and
    the model's tokens (blank excluded), so an LM built from them covers every token the model has."""
    from lstm_asr.data.tokens import BLANK
    from lstm_asr.nn.checkpoint import load_checkpoint
    from lstm_asr.recipe import corpora_of, load_recipe

    exp = Path(exp)
    recipe = load_recipe(exp / "recipe.yaml")
    sentences = recipe_training_sentences(recipe)
    tokens: list[str] = []
    if (exp / "best.pt").is_file():
        tokens = [t for t in load_checkpoint(exp / "best.pt")["tokens"] if t != BLANK]
    if not sentences:
        splits = ", ".join(f"{e.name + '/' if e.name else ''}{e.train_split}" for e in corpora_of(recipe)
                           if e.train_split)
        raise LstmAsrError(f"{exp}: no training utterances (training splits: {splits or 'none'})")
    return sentences, tokens
