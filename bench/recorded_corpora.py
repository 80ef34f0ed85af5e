"""What each recorded corpus gives a recipe: utterances, speakers and hours per split, skips, and where the words'
phones came from (CMUdict, the corpus's lexicon or phone labels, espeak-ng) with the out-of-lexicon words.

Lists the corpora through their readers (no features: ``lstm-asr prep`` times those), e.g.::

    .venv/bin/python bench/recorded_corpora.py \\
        speechocean762=/work/data/speechocean762:dev_share=0.16,test_share=0 \\
        audio_folder=/work/data/arctic_dvc/datasets/arctic:prompts=/work/data/kathleen/cmuarctic.data \\
        audio_folder=/work/data/kathleen:prompts=cmuarctic.data

Each argument is ``TYPE=PATH[:key=value,...]`` (keys of the recipe's corpus section).
"""

from __future__ import annotations

import time

import benchlib  # noqa: I001 (puts the repository root on sys.path first)
import soundfile as sf

from data_prep.corpora import open_source
from lstm_asr.recipe import CorpusSection

SPLITS = ("train", "dev", "test")


def corpus_section(arg: str) -> CorpusSection:
    kind, rest = arg.split("=", 1)
    path, _, opts = rest.partition(":")
    keys = {}
    for kv in filter(None, opts.split(",")):
        k, v = kv.split("=", 1)
        field_type = type(getattr(CorpusSection(), k))
        keys[k] = field_type(v) if field_type is not list else v.split("+")
    return CorpusSection(type=kind, path=path, **keys)


def describe(section: CorpusSection) -> dict:
    t0 = time.perf_counter()
    src = open_source(section.type, section.path, section)
    out: dict = {"type": section.type, "path": section.path, "splits": {}}
    oov: set[str] = set()
    for split in SPLITS:
        items = src.split(split)
        seconds = sum(sf.info(str(it.path)).duration for it in items.items)
        out["splits"][split] = {"utterances": len(items.items), "speakers": len({i.speaker for i in items.items}),
                                "hours": round(seconds / 3600, 3), "skipped": len(items.skipped), "notes": items.notes}
        stats = getattr(src, "lexicon_stats", None)
        if stats is not None:
            oov |= set(stats.oov)
    out["oov_words"] = sorted(oov)
    out["list_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def main() -> None:
    ap = benchlib.parser(__doc__.split("\n\n")[0], threads=None)
    ap.add_argument("corpora", nargs="+", help="TYPE=PATH[:key=value,...]")
    args = ap.parse_args()
    results = [describe(corpus_section(a)) for a in args.corpora]
    benchlib.emit({"config": benchlib.config(args), "corpora": results}, args.json)
    rows = []
    for r in results:
        for split, s in r["splits"].items():
            n = s["notes"]
            rows.append((r["path"].rstrip("/").rsplit("/", 1)[-1], split, s["utterances"], s["speakers"], s["hours"],
                         s["skipped"], n.get("out-of-lexicon words (distinct)", 0),
                         n.get("out-of-lexicon word tokens", 0)))
    benchlib.print_table(rows, [("corpus", "<22"), ("split", "<6"), ("utts", ">6"), ("spk", ">4"), ("hours", ">6.2f"),
                                ("skip", ">5"), ("OOV", ">4"), ("OOV tok", ">8")])
    for r in results:
        print(f"{r['path']}: listed in {r['list_seconds']} s; out-of-lexicon: {', '.join(r['oov_words']) or '-'}")


if __name__ == "__main__":
    main()
