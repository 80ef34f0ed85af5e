"""``lstm-asr evaluate``: decode a prepared split with an experiment's models and score it, with the error analysis.

Scores ``best.pt`` and, when training averaged checkpoints (``training.average_last``, ``lstm-asr average``),
``averaged.pt`` beside it. Each model's decode folder gets the Kaldi/sclite files, and the confusion matrix,
per-phone-class rates and ``report.html`` with the utterances' audio (``lstm_asr/scoring/evaluate.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_prep.corpora import resolve_units, score_units_for
from lstm_asr.data.prep import load_splits
from lstm_asr.data.wave_batches import split_reader
from lstm_asr.decoding.search import SearchConfig
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import AVERAGED
from lstm_asr.recipe import load_recipe
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.scoring.error_rates import metric_name
from lstm_asr.scoring.evaluate import CONVENTIONS, score_split, write_decode_dir, write_error_analysis


def evaluate_experiment(exp: Path, split: str = "test", beam: int = 1, lm: Path | None = None,
                        lexicon: Path | None = None, lm_weight: float | None = None,
                        word_score: float | None = None) -> list[str]:
    """Decode and score ``split`` with every model of ``exp``; returns the lines to print."""
    r = load_recipe(exp / "recipe.yaml")
    names = {"train": r.corpus.train_split, "dev": r.corpus.dev_split, "test": r.corpus.test_split}
    if split not in names:
        raise LstmAsrError(f"unknown split {split!r} (use train, dev or test)")
    data = load_splits(r, show_progress=False)[names[split]]
    cfg = SearchConfig.for_experiment(exp, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                      word_score=word_score)
    units = resolve_units(r.corpus.type, r.corpus.units)
    metric = metric_name(r.corpus.type, r.corpus.units)  # ondb: CER; other chars/BPE: WER (scored as words)
    audio = None
    if r.features.type == "fbank":
        wave = split_reader(r, data, names[split], 16000)

        def audio(i: int) -> tuple[np.ndarray, int]:
            return wave(i).numpy(), 16000

    lines = []
    models = [("best", exp / "best.pt")] + ([("averaged", exp / AVERAGED)] if (exp / AVERAGED).is_file() else [])
    for label, path in models:
        rec = Recognizer.load(path)
        # LM decoding, or a transducer model (its own searches); None: greedy/prefix beam search over CTC outputs.
        searcher = rec.searcher(cfg) if cfg.uses_lm or rec.transducer is not None else None
        score = score_split(data, decode_split(rec.model, data, beam=beam, search=searcher), rec.tokens,
                            score_units_for(r.corpus.type, r.corpus.units))
        out = exp / (f"decode_{split}" + (f"_beam{beam}" if beam > 1 else "") + ("_lm" if cfg.uses_lm else "")
                     + ("_averaged" if label == "averaged" else ""))
        decoding = searcher.describe() if searcher else "greedy" if beam <= 1 else f"prefix beam search, beam {beam}"
        write_decode_dir(out, data, score, {"split": split, "decoding": decoding, "units": units, "metric": metric,
                                            "model": path.name})
        classes = write_error_analysis(out, data, score, metric, f"{exp.name} {path.name}: {split}, {decoding}",
                                       audio)
        c = score.counts
        lines.append(f"{split} ({path.name}): {metric} {c.rate * 100:.2f}% (N={c.ref_tokens} S={c.sub} D={c.dele} "
                     f"I={c.ins}, {len(data)} utterances, {decoding})")
        lines.append((out / "sclite.txt").read_text().rstrip("\n"))
        if classes:
            lines.append("per class: " + ", ".join(f"{k} {v['rate']:.1f}%" for k, v in classes.items()))
        lines.append(f"alignments: {out / 'alignments.txt'}; report: {out / 'report.html'}")
    lines.append(f"scoring: {CONVENTIONS.get(r.corpus.type, 'exact symbols')}")
    return lines
