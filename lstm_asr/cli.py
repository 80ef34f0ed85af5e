"""The ``lstm-asr`` command line: a thin typer layer over the library.

Every user-caused problem arrives here as an :class:`~lstm_asr.errors.LstmAsrError` and is printed as one line
(``error: <file>: <problem>``) with exit status 1; no traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import LstmAsrError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train and run bidirectional LSTM + CTC recognisers (speech and online handwriting).")
synth_app = typer.Typer(no_args_is_help=True, help="Generate demo corpora in the real corpora's layouts.")
app.add_typer(synth_app, name="synth")

RecipeArg = Annotated[Path, typer.Argument(help="Recipe YAML file.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Override a recipe key: key.path=value (repeatable).")]


@synth_app.command("timit")
def synth_timit(
    out: Annotated[Path, typer.Argument(help="Folder to write the TIMIT-layout corpus into.")],
    minutes: Annotated[float, typer.Option(help="Approximate total audio, in minutes.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same corpus).")] = 0,
    jobs: Annotated[int, typer.Option(help="Parallel synthesis processes.")] = 2,
) -> None:
    """Generate a TIMIT-layout corpus (SPHERE audio, .PHN/.WRD/.TXT) from festival and flite voices."""
    from data_prep.synth_timit import generate_timit_corpus

    print(generate_timit_corpus(out, minutes=minutes, seed=seed, jobs=jobs, progress=True))


@app.command()
def prep(
    recipe: RecipeArg,
    set_: SetOpt = None,
    force: Annotated[bool, typer.Option(help="Recompute even if the stored features are up to date.")] = False,
    jobs: Annotated[int, typer.Option(help="Feature extraction processes (default: one per core).")] = 0,
) -> None:
    """Compute features and labels for the recipe's splits and store them (generating the corpus if needed)."""
    from .prep import prep as run_prep
    from .prep import store_dir
    from .recipe import load_recipe

    r = load_recipe(recipe, set_ or [])
    for report in run_prep(r, force=force, jobs=jobs or None):
        print(report.summary())
    print(f"features stored in {store_dir(r)}")


@app.command()
def train(
    recipe: RecipeArg,
    out: Annotated[Path | None, typer.Option(help="Experiment folder (default: exp/<recipe name>).")] = None,
    set_: SetOpt = None,
) -> None:
    """Train a BLSTM-CTC model from a recipe; writes checkpoints, metrics.jsonl and results.json."""
    from .recipe import load_recipe
    from .train import train as run_train

    r = load_recipe(recipe, set_ or [])
    exp = out or Path("exp") / r.name
    results = run_train(r, exp)
    for split in ("dev", "test"):
        s = results[split]
        print(f"{split} PER {s['per']:.2f}% (N={s['ref_tokens']} S={s['sub']} D={s['dele']} I={s['ins']}, "
              f"{s['utterances']} utterances)")
    print(f"scoring: {results['scoring']}")
    print(f"experiment: {exp}")


@app.command()
def decode(
    files: Annotated[list[Path], typer.Argument(help="Audio files (any format soundfile reads).")],
    model: Annotated[Path | None, typer.Option(help="Experiment folder or checkpoint (default: latest).")] = None,
    beam: Annotated[int, typer.Option(help="Beam width; 1 = greedy.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines with per-token times.")] = False,
) -> None:
    """Decode audio files and print one transcript per file."""
    from .recognizer import Recognizer, find_latest_experiment

    rec = Recognizer.load(model or find_latest_experiment())
    failed = 0
    for f in files:
        try:
            result = rec.transcribe(f, beam=beam)
        except LstmAsrError as exc:  # one bad file must not stop the others
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(json.dumps(result.to_dict()) if as_json else f"{f}\t{result.text}")
    if failed:
        raise LstmAsrError(f"{failed} of {len(files)} files could not be decoded")


@app.command()
def evaluate(
    exp: Annotated[Path, typer.Argument(help="Experiment folder.")],
    split: Annotated[str, typer.Option(help="Split to score: train, dev or test (core test).")] = "test",
    beam: Annotated[int, typer.Option(help="Beam width; 1 = greedy.")] = 1,
) -> None:
    """Score an experiment's best model on a split: error rate with S/D/I; writes per-utterance alignments."""
    from .corpus import score_units_for
    from .evaluate import CONVENTIONS, decode_split, score_split, write_decode_dir
    from .prep import load_splits
    from .recipe import load_recipe
    from .recognizer import Recognizer

    r = load_recipe(exp / "recipe.yaml")
    names = {"train": r.corpus.train_split, "dev": r.corpus.dev_split, "test": r.corpus.test_split}
    if split not in names:
        raise LstmAsrError(f"unknown split {split!r} (use train, dev or test)")
    data = load_splits(r, show_progress=False)[names[split]]
    rec = Recognizer.load(exp)
    score = score_split(data, decode_split(rec.model, data, beam=beam), rec.tokens, score_units_for(r.corpus.type))
    out = exp / (f"decode_{split}" + (f"_beam{beam}" if beam > 1 else ""))
    decoding = "greedy" if beam <= 1 else f"prefix beam search, beam {beam}"
    write_decode_dir(out, data, score, {"split": split, "decoding": decoding})
    c = score.counts
    print(f"{split}: PER {c.rate * 100:.2f}% (N={c.ref_tokens} S={c.sub} D={c.dele} I={c.ins}, "
          f"{len(data)} utterances, {decoding})")
    print(f"scoring: {CONVENTIONS.get(r.corpus.type, 'exact symbols')}")
    print(f"alignments: {out / 'alignments.txt'}")


def main() -> None:
    """Console entry point: run the app, turning lstm-asr errors into one-line messages."""
    try:
        app()
    except LstmAsrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
