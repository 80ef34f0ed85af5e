"""``lstm-asr evaluate`` of a multi-corpus experiment (``corpora:``): each corpus's split decoded and scored on
its own line, with its own scoring convention, then the pooled figure. ``evaluate EXP --on RECIPE`` does the same
for the corpora of another recipe: a model scored on corpora it never trained on (cross-corpus transfer).

Single-corpus experiments, with the error analysis: ``lstm_asr/recognition/experiment_evaluation.py``.
"""

from __future__ import annotations

from pathlib import Path

from lstm_asr.data.corpus_mix import load_training_data
from lstm_asr.decoding.search import SearchConfig
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import AVERAGED
from lstm_asr.recipe import Recipe, primary_corpus
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.scoring.error_rates import metric_name
from lstm_asr.scoring.evaluate import score_split, write_decode_dir


def evaluate_corpora(exp: Path, recipe: Recipe, split: str = "test", beam: int = 1, lm: Path | None = None,
                     lexicon: Path | None = None, lm_weight: float | None = None,
                     word_score: float | None = None, other: bool = False) -> list[str]:
    """Decode and score ``split`` (dev or test) of every corpus that gives one, with every model of ``exp``.

    ``other``: ``recipe`` is not the experiment's own but names corpora to score it on (their features must be the
    ones the model was trained on); results go to ``decode_<split>_on_<recipe name>_<corpus>/``.
    """
    if split not in ("dev", "test"):
        raise LstmAsrError(f"split {split!r}: a multi-corpus experiment is evaluated on dev or test (each corpus's)")
    if other:
        check_same_features(exp, recipe)
    data = load_training_data(recipe, show_progress=False)
    by_corpus = data.devs if split == "dev" else data.tests
    pooled = data.dev if split == "dev" else data.test
    c = primary_corpus(recipe)
    metric = metric_name(c.type, c.units)
    cfg = SearchConfig.for_experiment(exp, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                      word_score=word_score)
    lines = []
    models = [("best", exp / "best.pt")] + ([("averaged", exp / AVERAGED)] if (exp / AVERAGED).is_file() else [])
    for label, path in models:
        rec = Recognizer.load(path)
        searcher = rec.searcher(cfg) if cfg.uses_lm or rec.transducer is not None else None
        decoding = searcher.describe() if searcher else "greedy" if beam <= 1 else f"prefix beam search, beam {beam}"
        suffix = (f"_beam{beam}" if beam > 1 else "") + ("_lm" if cfg.uses_lm else "") + \
            ("_averaged" if label == "averaged" else "")
        on = f"_on_{recipe.name}" if other else ""
        # A line per corpus, then the pooled one; a single-corpus recipe (--on a plain corpus: section) has one line.
        rows = [(f"{split} {name}", s, data.score_units[name], exp / f"decode_{split}{on}_{name}{suffix}")
                for name, s in by_corpus.items()] if recipe.corpora else []
        rows.append((f"{split} (all corpora)" if rows else split, pooled, data.score_units[c.name],
                     exp / f"decode_{split}{on}{suffix}"))
        for title, s, units, out in rows:
            score = score_split(s, decode_split(rec.model, s, beam=beam, search=searcher), rec.tokens, units)
            write_decode_dir(out, s, score, {"split": split, "decoding": decoding, "metric": metric,
                                             "model": path.name})
            k = score.counts
            lines.append(f"{title} ({path.name}): {metric} {k.rate * 100:.2f}% (N={k.ref_tokens} S={k.sub} "
                         f"D={k.dele} I={k.ins}, {len(s)} utterances, {decoding})")
    return lines


def check_same_features(exp: Path, recipe: Recipe) -> None:
    """A one-line error unless ``recipe``'s features are the ones ``exp``'s model reads (same front end)."""
    from lstm_asr.data.prep import feature_config

    model = Recognizer.load(exp / "best.pt").features.to_dict()
    theirs = feature_config(recipe).to_dict()
    differ = sorted(k for k in set(model) | set(theirs) if k != "normalize" and model.get(k) != theirs.get(k))
    if differ:
        raise LstmAsrError(f"{exp}: its model reads other features than {recipe.name}'s corpora "
                           f"({', '.join(f'{k}: {model.get(k)!r} vs {theirs.get(k)!r}' for k in differ)})")
