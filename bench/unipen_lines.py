"""UNIPEN: does a model read lines with spaces? Score an experiment on lines assembled from held-out writers' words.

The lines are the source's ``<split>_lines`` (``data_prep/unipen.py``: 2-4 consecutive words of one writer, words
written side by side keep their gap, the others are placed at the line's natural gap), prepared with the model's
own front end into a folder of their own (the experiment's stores are left alone), decoded greedily and scored:
CER with the space counted, WER, and how many of the reference spaces the hypotheses have.

Run from the repository root::

    .venv/bin/python bench/unipen_lines.py --exp exp/unipen_words_12min --split test --out data/unipen_lines
"""

from __future__ import annotations

import time
from pathlib import Path

import benchlib

from data_prep.corpora import open_source
from data_prep.units import WORD_SEP, tokens_to_words
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.ink_features import InkFeatureConfig
from lstm_asr.data.prep import prep_split
from lstm_asr.data.tokens import BLANK, TokenSet
from lstm_asr.recipe import corpora_of, load_recipe
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.scoring.levenshtein import score


def main() -> None:
    ap = benchlib.parser(__doc__.splitlines()[0], threads=1)
    ap.add_argument("--exp", required=True)
    ap.add_argument("--split", default="test", help="test, dev, site_test (with _en/_other)")
    ap.add_argument("--out", default="data/unipen_lines", help="folder for the lines' features")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    benchlib.start(args)
    exp = Path(args.exp)
    recipe = load_recipe(exp / "recipe.yaml")
    rec = Recognizer.load(exp)
    if not isinstance(rec.features, InkFeatureConfig):
        raise SystemExit(f"{exp}: not a handwriting model")
    # The UNIPEN corpus of the recipe: its ``corpus:`` section, or the unipen entry of its ``corpora:`` list.
    unipen = [c for c in corpora_of(recipe) if c.type == "unipen"]
    if not unipen:
        raise SystemExit(f"{exp}: the recipe has no UNIPEN corpus")
    source = open_source("unipen", unipen[0].path, unipen[0])
    symbols = [t for t in rec.tokens if t != BLANK]
    tokens = TokenSet(symbols)
    name = args.split.replace("_en", "_lines_en").replace("_other", "_lines_other") \
        if args.split.endswith(("_en", "_other")) else f"{args.split}_lines"
    start = time.perf_counter()
    report = prep_split(source, name, Path(args.out) / name, rec.features, tokens, jobs=args.jobs)
    prep_seconds = time.perf_counter() - start
    split = FeatureSplit(Path(args.out) / name)
    hyp_ids = decode_split(rec.model, split)
    refs = [r.split() for r in split.refs]
    hyps = [[tokens.symbols[i] for i in ids] for ids in hyp_ids]
    cer = score(refs, hyps)
    wer = score([tokens_to_words(r, "chars") for r in refs], [tokens_to_words(h, "chars") for h in hyps])
    ref_spaces = sum(r.count(WORD_SEP) for r in refs)
    hyp_spaces = sum(h.count(WORD_SEP) for h in hyps)
    result = {"config": benchlib.config(args), "split": name, "lines": len(refs), "prep": report.summary(),
              "prep_seconds": round(prep_seconds, 1), "cer": round(cer.rate * 100, 2),
              "wer": round(wer.rate * 100, 2), "reference_spaces": ref_spaces, "hypothesis_spaces": hyp_spaces,
              "examples": [{"ref": "".join(r).replace(WORD_SEP, " "), "hyp": "".join(h).replace(WORD_SEP, " ")}
                           for r, h in list(zip(refs, hyps, strict=True))[:5]]}
    benchlib.emit(result, args.json)
    benchlib.print_table([(name, len(refs), result["cer"], result["wer"], ref_spaces, hyp_spaces)],
                         [("split", ""), ("lines", ">"), ("CER %", ">.2f"), ("WER %", ">.2f"),
                          ("ref spaces", ">"), ("hyp spaces", ">")], markdown=True)


if __name__ == "__main__":
    main()
