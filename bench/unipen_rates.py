"""UNIPEN: the corpus's counts, and an experiment's CER/WER on held-out writers split by site language.

Two parts, each optional:

- ``--corpus data/unipen``: list the selection of a recipe's ``corpus.unipen`` section (``--recipe``) and print
  items, writers and sites per split role, skips by reason, oddities and missing include files, with the time the
  listing took (the pen data itself is read by ``lstm-asr prep``, which prints its own time and skips);
- ``--decoded EXP/decode_test``: the ``hyp.txt``/``ref.txt`` that ``lstm-asr evaluate EXP`` writes, scored per
  language group (English and non-English sites, ``data_prep.unipen.NON_ENGLISH_SITES``; an utterance id is
  ``c<category>_<site>_...``) and per site;
- ``--words ROLES --words-out FILE``: the selection's words of the writers in ROLES (comma-separated: train, dev,
  test), one per line, every occurrence (the text for ``lstm-asr lm lexicon`` and a word unigram
  ``lstm-asr lm build FILE --order 1``), and how many test words it lacks (the out-of-vocabulary rate).

Run from the repository root::

    .venv/bin/python bench/unipen_rates.py --recipe recipes/unipen/words.yaml --corpus data/unipen \\
        --decoded exp/unipen_words/decode_test
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import benchlib

from data_prep.unipen import UnipenOptions, UnipenSource, site_language
from data_prep.units import tokens_to_words
from lstm_asr.recipe import load_recipe
from lstm_asr.scoring.levenshtein import score


def corpus_counts(recipe: str, corpus: str) -> dict:
    r = load_recipe(recipe)
    start = time.perf_counter()
    src = UnipenSource(Path(corpus), UnipenOptions.from_section(r.corpus.unipen))
    counts = src.counts()
    counts["listing_seconds"] = round(time.perf_counter() - start, 2)
    rows = src.listing().rows
    counts["total"] = {"items": len(rows), "writers": len({w for _, _, w, *_ in rows}),
                       "sites": len({s for _, s, *_ in rows}),
                       "non_english_writers": len({w for _, s, w, *_ in rows if site_language(s) != "en"})}
    return counts


def word_list(recipe: str, corpus: str, roles: list[str], out: str) -> dict:
    """Write the words of the writers in ``roles`` (one per line, every occurrence); count the test words
    outside them."""
    r = load_recipe(recipe)
    src = UnipenSource(Path(corpus), UnipenOptions.from_section(r.corpus.unipen))
    rows = src.listing().rows
    words = [seg.label for *_, seg, role in rows if role in roles and " " not in seg.label and "|" not in seg.label]
    Path(out).write_text("".join(w + "\n" for w in words))
    known = set(words)
    test = [seg.label for *_, seg, role in rows if role == "test"]
    oov = sum(w not in known for w in test)
    return {"roles": roles, "words": len(words), "distinct": len(known), "test_words": len(test),
            "test_oov": oov, "test_oov_rate": round(100 * oov / max(1, len(test)), 2), "out": out}


def _read(path: Path) -> list[tuple[str, list[str]]]:
    """(utterance id, symbols) per line, in file order (ids are not assumed unique)."""
    out = []
    for line in path.read_text().splitlines():
        utt, _, rest = line.partition(" ")
        out.append((utt, rest.split()))
    return out


def rates_by_group(decoded: str) -> dict:
    d = Path(decoded)
    refs, hyps = _read(d / "ref.txt"), _read(d / "hyp.txt")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (utt, _) in enumerate(refs):
        site = utt.split("_")[1] if utt.count("_") >= 2 else "?"
        groups["all"].append(i)
        groups["english" if site_language(site) == "en" else "non-english"].append(i)
        groups[f"site {site}"].append(i)
    out = {}
    for name, idx in groups.items():
        cer = score([refs[i][1] for i in idx], [hyps[i][1] for i in idx])
        wer = score([tokens_to_words(refs[i][1], "chars") for i in idx],
                    [tokens_to_words(hyps[i][1], "chars") for i in idx])
        utts = idx
        out[name] = {"items": len(utts), "cer": round(cer.rate * 100, 2), "wer": round(wer.rate * 100, 2)}
    return out


def main() -> None:
    ap = benchlib.parser(__doc__.splitlines()[0], threads=None)
    ap.add_argument("--recipe", default="recipes/unipen/words.yaml")
    ap.add_argument("--corpus", default="", help="UNIPEN root: print the selection's counts")
    ap.add_argument("--decoded", default="", help="a decode folder (hyp.txt, ref.txt) to score by language")
    ap.add_argument("--words", default="", help="write the words of these writer roles (e.g. train or train,dev,test)")
    ap.add_argument("--words-out", default="words.txt", help="where --words writes them")
    args = ap.parse_args()
    result: dict = {"config": benchlib.config(args)}
    if args.corpus:
        result["counts"] = corpus_counts(args.recipe, args.corpus)
    if args.decoded:
        result["rates"] = rates_by_group(args.decoded)
    if args.words:
        result["words"] = word_list(args.recipe, args.corpus or "data/unipen", args.words.split(","), args.words_out)
    benchlib.emit(result, args.json)
    if args.decoded:
        rows = [(name, r["items"], r["cer"], r["wer"]) for name, r in result["rates"].items()]
        benchlib.print_table(rows, [("group", ""), ("items", ">"), ("CER %", ">.2f"), ("WER %", ">.2f")],
                             markdown=True)


if __name__ == "__main__":
    main()
