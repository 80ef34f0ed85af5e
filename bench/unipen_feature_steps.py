"""What each ink normalisation step buys in error rate on held-out real writers: one training run per step left out.

``bench/unipen_features.py`` shows how alike the devices look after each step (no model); this trains the same small
recipe once per step switched off and scores dev and test writers no training word comes from. Each variant is the
recipe with ``--set`` overrides and a feature store of its own: ``lstm-asr prep`` (skipped when the store is up to
date), then ``lstm-asr train --resume`` into ``OUT/<variant>`` (a finished run, ``results.json`` present, is read,
not retrained; an interrupted one continues from its ``last.pt``). ``--reference EXP`` takes an already trained run
of the unchanged recipe (e.g. the Greff study's peephole seed 0) instead of training the reference again.

Run from the repository root (about 7 CPU minutes per variant for recipes/unipen/greff_study.yaml on an idle core)::

    .venv/bin/python bench/unipen_feature_steps.py --recipe recipes/unipen/greff_study.yaml \\
        --out exp/unipen_feature_steps --jobs 2 \\
        --reference 'exp/study_unipen_greff/runs/00_model.cell=peephole/seed0'

Prints JSON (``--json FILE`` also writes it) and a table: dev and test CER/WER per variant, and the test CER's
change against the reference (positive: the step, switched off, costs that many points).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import benchlib

# Each step of the device-independent ink features (lstm_asr/data/ink_features.py), switched off on its own. The
# resampling step (ink_spacing: 0, the devices' own points) is left out: at 9,600 points per second it multiplies
# the frames, and the training time, by up to ten; bench/unipen_features.py shows what it does to the frame counts.
VARIANTS: dict[str, list[str]] = {
    "all steps (reference)": [],
    "no resolution (stated points per inch)": ["features.ink_resolution=false"],
    "no size (core height)": ["features.ink_size=false"],
    "no deslant, no deskew": ["features.ink_deslant=false", "features.ink_deskew=false"],
    "no arc-weighting (point-weighted core band)": ["features.ink_arc_weighted=false"],
    "pen-up time kept (device-dependent dt)": ["features.ink_pen_up_time=true"],
}


def slug(name: str) -> str:
    """A folder name for a variant: its words up to the first parenthesis, joined by underscores."""
    return "_".join(name.split("(")[0].replace(",", "").split())


def lstm_asr(*args: str, log: Path) -> None:
    """Run ``python -m lstm_asr ARGS`` with its output appended to ``log``; raise with the log's tail on failure."""
    with log.open("a") as out:
        done = subprocess.run([sys.executable, "-m", "lstm_asr", *args], stdout=out, stderr=subprocess.STDOUT)
    if done.returncode:
        tail = log.read_text().splitlines()[-5:]
        raise RuntimeError(f"lstm-asr {args[0]} failed ({done.returncode}); {log}: " + " | ".join(tail))


def run_variant(recipe: str, out: Path, name: str, sets: list[str], store_root: str) -> Path:
    """Prepare the variant's features and train it (resumably); return its experiment folder."""
    exp = out / slug(name)
    if (exp / "results.json").is_file():
        return exp
    exp.mkdir(parents=True, exist_ok=True)
    overrides = [*sets, f"features.store={store_root}/{slug(name)}"]
    set_args = [a for s in overrides for a in ("--set", s)]
    log = exp.parent / f"{exp.name}.log"
    lstm_asr("prep", recipe, "--jobs", "1", *set_args, log=log)
    lstm_asr("train", recipe, "--out", str(exp), "--resume", *set_args, log=log)
    return exp


def figures(exp: Path) -> dict:
    """Dev and test CER/WER, epochs and training minutes from a run's ``results.json``."""
    r = json.loads((exp / "results.json").read_text())
    return {"exp": str(exp), "epochs": r["epochs"], "train_minutes": r["train_minutes"],
            **{f"{split}_{m}": r[split][m] for split in ("dev", "test") for m in ("cer", "wer")}}


def main() -> None:
    ap = benchlib.parser(__doc__.splitlines()[0], threads=None)
    ap.add_argument("--recipe", default="recipes/unipen/greff_study.yaml")
    ap.add_argument("--out", type=Path, default=Path("exp/unipen_feature_steps"))
    ap.add_argument("--store-root", default="data/unipen_features/steps",
                    help="each variant's feature store is STORE_ROOT/<variant>")
    ap.add_argument("--reference", type=Path, default=None,
                    help="a trained run of the unchanged recipe, used instead of training the reference")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at once (one thread each)")
    ap.add_argument("--only", default="", help="comma-separated variant folder names to run (default: all)")
    args = ap.parse_args()

    chosen = {n: s for n, s in VARIANTS.items() if not args.only or slug(n) in args.only.split(",")}
    start = time.perf_counter()
    exps: dict[str, Path] = {}
    todo = {n: s for n, s in chosen.items() if not (s == [] and args.reference)}
    if args.reference and "all steps (reference)" in chosen:
        exps["all steps (reference)"] = args.reference
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = {n: pool.submit(run_variant, args.recipe, args.out, n, s, args.store_root) for n, s in todo.items()}
        exps.update({n: f.result() for n, f in futures.items()})
    rows = {n: figures(exps[n]) for n in chosen}
    ref = rows.get("all steps (reference)")
    for row in rows.values():
        row["test_cer_change"] = round(row["test_cer"] - ref["test_cer"], 2) if ref else None
    benchlib.emit({"recipe": args.recipe, "variants": {n: {"set": VARIANTS[n], **r} for n, r in rows.items()},
                   "wall_seconds": round(time.perf_counter() - start, 1)}, args.json)
    benchlib.print_table(
        [(n, r["epochs"], r["dev_cer"], r["test_cer"], r["test_wer"],
          "" if r["test_cer_change"] is None else f"{r['test_cer_change']:+.2f}") for n, r in rows.items()],
        [("variant", "<44"), ("epochs", ">6"), ("dev CER %", ">9.2f"), ("test CER %", ">10.2f"),
         ("test WER %", ">10.2f"), ("test CER change", ">15")])


if __name__ == "__main__":
    main()
