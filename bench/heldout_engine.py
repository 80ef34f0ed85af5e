"""Error rate per synthesis engine and talker of a generated corpus: how a model does on an engine it never heard.

Run: ``.venv/bin/python bench/heldout_engine.py EXP [EXP ...] [--split test] [--decode-dir decode_test]``
after training (or ``lstm-asr evaluate``) on a corpus generated with a whole engine held out of TRAIN, e.g.

    lstm-asr synth timit data/heldout_espeak --minutes 60 --engines festival,flite,espeak \\
        --train-engines festival,flite --test-talkers ked,espm1,espf2,espm4

Each utterance's S/D/I counts come from ``EXP/<decode dir>/alignments.txt``, its speaker's engine and talker from the
corpus's ``SYNTH_INFO.json``. Prints JSON and a table: PER per engine that TEST uses, and the ratio of the
held-out engines' PER (engines no TRAIN speaker uses) to the in-engine PER (TEST talkers of TRAIN's engines).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import benchlib  # first: it puts the repository root on sys.path
import yaml

_HEAD = re.compile(r"^(\S+)\s+N=(\d+) S=(\d+) D=(\d+) I=(\d+)$")


def per_engine(exp: Path, decode_dir: str) -> dict:
    recipe = yaml.safe_load((exp / "recipe.yaml").read_text())
    info = json.loads((Path(recipe["corpus"]["path"]) / "SYNTH_INFO.json").read_text())
    by_name = {folder.split("/")[-1].upper(): (folder.split("/")[0], v) for folder, v in info["speakers"].items()}
    train_engines = {v["engine"] if "engine" in v else v["voice"].split("_")[0]
                     for split, v in by_name.values() if split == "TRAIN"}
    sums: dict[str, list[int]] = {}
    for line in (exp / decode_dir / "alignments.txt").read_text().splitlines():
        m = _HEAD.match(line)
        if not m:
            continue
        _, v = by_name[m.group(1).split("_")[0].upper()]
        engine = v.get("engine", v["voice"].split("_")[0])
        for key in (f"engine {engine}", f"talker {v['talker']}",
                    "in-engine" if engine in train_engines else "held-out engine"):
            acc = sums.setdefault(key, [0, 0, 0, 0])
            for k in range(4):
                acc[k] += int(m.group(2 + k))
    rates = {k: {"N": n, "S": s, "D": d, "I": i, "per": round(100 * (s + d + i) / n, 2)}
             for k, (n, s, d, i) in sorted(sums.items())}
    held, inside = rates.get("held-out engine"), rates.get("in-engine")
    ratio = round(held["per"] / inside["per"], 3) if held and inside else None
    return {"exp": str(exp), "train_engines": sorted(train_engines), "rates": rates, "held_out_over_in_engine": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exps", nargs="+", type=Path)
    ap.add_argument("--decode-dir", default="decode_test")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    results = [per_engine(e, args.decode_dir) for e in args.exps]
    benchlib.emit({"decode_dir": args.decode_dir, "results": results}, args.json)
    rows = [(r["exp"], k, v["N"], v["per"]) for r in results for k, v in r["rates"].items()]
    rows += [(r["exp"], "held-out / in-engine", 0, r["held_out_over_in_engine"] or 0.0) for r in results]
    benchlib.print_table(rows, [("experiment", "<40"), ("group", "<22"), ("N", ">6"), ("PER / ratio", ">11.2f")])


if __name__ == "__main__":
    main()
