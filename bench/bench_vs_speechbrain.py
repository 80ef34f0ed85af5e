"""Seconds per epoch of lstm-asr's trainer and SpeechBrain's, same corpus, network, threads and batch size, one run.

Run from the repository root, on the whole machine (both trainers use ``--threads`` threads)::

    cpu-run -n 2 .venv/bin/python bench/bench_vs_speechbrain.py --epochs 2 [--settings b8 demo] [--work DIR]

For each batch setting the two trainers run one after the other, each in a fresh process, for ``--epochs`` epochs
of a 3x250 BLSTM-CTC (Graves et al. 2013's network) on the same TIMIT-layout corpus (default: the 150-minute demo
corpus, ``data/synth_timit/corpus``):

* lstm-asr: ``lstm-asr train RECIPE`` (default ``recipes/synth_timit/demo.yaml``) with the issue-16 overrides: no
  frame stacking, dropout 0.15, no SpecAugment, ``training.max_batch``/``max_frames`` from the setting. Its epoch
  is the epoch record's ``epoch_seconds`` (training) plus ``dev_seconds`` (dev decode and scoring).
* SpeechBrain 1.1.2: its own TIMIT CTC recipe through the peer harness ``shared/peers/speechbrain_timit.sh``
  (``SB_ARCH=blstm SB_AUGMENT=0``, ``--rnn_layers=3 --rnn_neurons=250 --batch_size=B``); its epoch is train plus
  validation, from its own log.

Settings: ``b8`` = 8 utterances per batch for both; ``demo`` = the demo recipe's own ``max_batch``/``max_frames``
for lstm-asr (16 utterances, at most 6,000 padded frames) and batches of 16 for SpeechBrain.

Reported per trainer and setting: seconds per epoch (median over epochs, and each epoch), train-set frames/s over
the whole epoch, and lstm-asr's training-only frames/s; the ratio SpeechBrain / lstm-asr epoch seconds (> 1: ours
is faster). SpeechBrain differs in ways the comparison cannot remove (its recipe: 40 log-mel inputs instead of
123, features computed on the fly, one fused ``nn.LSTM`` whose padding reaches the backward direction, duration
sorted batches in fixed order); ``bench/RESULTS.md`` lists them.

SpeechBrain needs its source (``SB_SNAPSHOT``, default ``.mirror/speechbrain+speechbrain`` beside the shared folder)
and a venv the peer script builds on first use (~1.2 GB from the package registries). Without the peer script or
the source the SpeechBrain side is skipped with a message, and lstm-asr's figures are still printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchlib

from lstm_asr.recipe import load_recipe

# augment.speed=1.0: the demo recipe's speed perturbation computes features from the audio as training goes (1.3x the
# time per frame); SpeechBrain runs without augmentation (SB_AUGMENT=0), so ours reads the stored features.
ISSUE16 = ["model.hidden=250", "model.layers=3", "model.stack_frames=1", "model.subsample=1", "model.dropout=0.15",
           "training.spec_time_masks=0", "training.spec_freq_masks=0", "training.max_minutes=0", "augment.speed=1.0"]
# SpeechBrain's prep matches these anywhere in a path (upper-case corpus layout): a path holding one mis-splits.
SB_BAD_SUBSTRINGS = ("TRAIN", "TEST", "SA1", "SA2", ".WAV", "train", "test", "sa1", "sa2", ".wav")


def find_peer_script(given: str) -> Path | None:
    """The peer harness: ``given``, else shared/peers/ beside the repository or one level further up."""
    candidates = [Path(given)] if given else [benchlib.ROOT.parent / "shared/peers/speechbrain_timit.sh",
                                               benchlib.ROOT.parent.parent / "shared/peers/speechbrain_timit.sh"]
    return next((p.resolve() for p in candidates if p.is_file()), None)


def speechbrain_source(script: Path) -> Path | None:
    """The SpeechBrain source the peer script will use (its SB_SNAPSHOT default), if present."""
    snap = Path(os.environ.get("SB_SNAPSHOT", script.parent.parent.parent / ".mirror/speechbrain+speechbrain"))
    return snap if snap.exists() else None


def settings_for(name: str, recipe_path: str) -> dict[str, Any]:
    """Batch settings by name: ``bN`` (N utterances per batch for both) or ``demo`` (the recipe's own)."""
    if name == "demo":
        t = load_recipe(recipe_path).training
        return {"name": name, "max_batch": t.max_batch, "max_frames": t.max_frames, "sb_batch": t.max_batch}
    m = re.fullmatch(r"b(\d+)", name)
    if not m:
        raise SystemExit(f"--settings: {name!r} is neither bN (e.g. b8) nor demo")
    n = int(m.group(1))
    return {"name": name, "max_batch": n, "max_frames": 10**6, "sb_batch": n}


def run_ours(recipe: str, out: Path, setting: dict[str, Any], epochs: int, threads: int) -> dict[str, Any]:
    """lstm-asr for ``epochs`` epochs in a fresh process; per-epoch train and dev-decode seconds from its log."""
    shutil.rmtree(out, ignore_errors=True)
    sets = ISSUE16 + [f"training.max_batch={setting['max_batch']}", f"training.max_frames={setting['max_frames']}",
                      f"training.max_epochs={epochs}", f"training.patience={epochs + 1}", f"training.threads={threads}"]
    cmd = [sys.executable, "-m", "lstm_asr", "train", recipe, "--out", str(out)]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(benchlib.ROOT)}
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=benchlib.ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"lstm-asr train failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epochs_ = [r for r in records if r["kind"] == "epoch"]
    m = re.search(r"train \d+ utterances, (\d+) frames", proc.stdout)  # the trainer's own count (real frames)
    if not m:
        raise SystemExit(f"lstm-asr train printed no frame count:\n{proc.stdout[-2000:]}")
    frames = int(m.group(1))
    return {"epoch_s": [round(r["epoch_seconds"] + r["dev_seconds"], 1) for r in epochs_],
            "train_s": [r["epoch_seconds"] for r in epochs_], "dev_s": [r["dev_seconds"] for r in epochs_],
            "train_frames_per_s": [r["frames_per_s"] for r in epochs_], "frames": frames,
            "dev_per": [r["dev_per"] for r in epochs_], "process_s": round(time.time() - t0, 1),
            "command": " ".join(cmd[1:])}


def run_speechbrain(script: Path, corpus: Path, out: Path, setting: dict[str, Any], epochs: int,
                    threads: int) -> dict[str, Any]:
    """SpeechBrain's recipe through the peer harness; per-epoch (train + validation) seconds from its summary."""
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: an existing one would resume
    env = {**os.environ, "SB_ARCH": "blstm", "SB_AUGMENT": "0", "SB_THREADS": str(threads)}
    cmd = ["bash", str(script), str(corpus), str(out), str(epochs), "--rnn_layers=3", "--rnn_neurons=250",
           f"--batch_size={setting['sb_batch']}"]
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"SpeechBrain peer run failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = (out / "summary.txt").read_text()
    times = re.search(r"epoch wall times, train\+valid \(s\): (.*)", summary)
    frames = re.search(r"train set: \d+ utterances, [0-9.]+ s, (\d+) frames", summary)
    if not times or not frames:
        raise SystemExit(f"{out / 'summary.txt'}: no epoch times or frame count")
    per_epoch = [float(x.split(":")[1]) for x in times.group(1).split()]
    return {"epoch_s": per_epoch, "frames": int(frames.group(1)), "process_s": round(time.time() - t0, 1),
            "command": f"SB_ARCH=blstm SB_AUGMENT=0 SB_THREADS={threads} " + " ".join(cmd)}


def neutral_corpus(corpus: Path, work: Path) -> Path:
    """A symlink to the corpus from a path SpeechBrain's substring matching cannot trip on."""
    link = work / "corpus"
    if any(s in str(link) for s in SB_BAD_SUBSTRINGS):
        raise SystemExit(f"--work {work}: the path holds one of {', '.join(SB_BAD_SUBSTRINGS)}, which SpeechBrain's "
                         "TIMIT prep matches anywhere in a path; choose another folder")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(corpus.resolve())
    return link


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--settings", nargs="+", default=["b8", "demo"], help="bN (N utterances per batch) or demo")
    ap.add_argument("--recipe", default="recipes/synth_timit/demo.yaml")
    ap.add_argument("--corpus", default="", help="TIMIT-layout corpus (default: the recipe's corpus.path)")
    ap.add_argument("--peer-script", default="", help="speechbrain_timit.sh (default: shared/peers/ beside the repo)")
    ap.add_argument("--work", default="/tmp/bench_vs_sb")
    ap.add_argument("--skip-speechbrain", action="store_true", help="time lstm-asr only")
    args = ap.parse_args()
    benchlib.start(args)
    recipe = str((benchlib.ROOT / args.recipe).resolve()) if not Path(args.recipe).is_absolute() else args.recipe
    corpus = Path(args.corpus or load_recipe(recipe).corpus.path)
    if not corpus.is_absolute():
        corpus = benchlib.ROOT / corpus
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    script = find_peer_script(args.peer_script)
    skip = ("--skip-speechbrain" if args.skip_speechbrain else
            "no peer script (shared/peers/speechbrain_timit.sh; give --peer-script)" if script is None else
            "no SpeechBrain source (set SB_SNAPSHOT to a clone or bare mirror of speechbrain/speechbrain)"
            if speechbrain_source(script) is None else "")
    if skip:
        print(f"SpeechBrain side skipped: {skip}", file=sys.stderr)
    runs: list[dict[str, Any]] = []
    for name in args.settings:
        setting = settings_for(name, recipe)
        row: dict[str, Any] = {"setting": setting}
        row["lstm_asr"] = run_ours(recipe, work / f"ours_{name}", setting, args.epochs, args.threads)
        if not skip:
            assert script is not None
            row["speechbrain"] = run_speechbrain(script, neutral_corpus(corpus, work), work / f"sb_{name}", setting,
                                                 args.epochs, args.threads)
        for who in ("lstm_asr", "speechbrain"):
            if who in row:
                r = row[who]
                r["median_epoch_s"] = statistics.median(r["epoch_s"])
                r["frames_per_s"] = round(r["frames"] / r["median_epoch_s"])
        if "speechbrain" in row:
            row["sb_over_ours_epoch_s"] = round(row["speechbrain"]["median_epoch_s"] /
                                                row["lstm_asr"]["median_epoch_s"], 3)
        runs.append(row)
        print(f"[{name}] done", file=sys.stderr)
    benchlib.emit({"config": benchlib.config(args), "skipped_speechbrain": skip or None, "runs": runs}, args.json)
    print()
    rows = []
    for row in runs:
        s = row["setting"]
        desc = f"{s['name']} (ours {s['max_batch']}/{s['max_frames']}, SB {s['sb_batch']})"
        o = row["lstm_asr"]
        rows.append((desc, "lstm-asr", o["median_epoch_s"], o["frames_per_s"], statistics.median(o["train_s"]),
                     statistics.median(o["train_frames_per_s"]), " ".join(map(str, o["epoch_s"]))))
        if "speechbrain" in row:
            b = row["speechbrain"]
            rows.append((desc, "SpeechBrain", b["median_epoch_s"], b["frames_per_s"], float("nan"), float("nan"),
                         " ".join(map(str, b["epoch_s"]))))
    benchlib.print_table(rows, [("setting", "<34"), ("trainer", "<12"), ("epoch s", ">8.1f"), ("frames/s", ">9,.0f"),
                                ("train s", ">8.1f"), ("train f/s", ">10,.0f"), ("epochs (s)", "<20")])
    for row in runs:
        if "sb_over_ours_epoch_s" in row:
            print(f"{row['setting']['name']}: SpeechBrain epoch / lstm-asr epoch = {row['sb_over_ours_epoch_s']:.3f} "
                  "(> 1: lstm-asr is faster)")
    print(f"({args.epochs} epochs each, {args.threads} threads; epochs include the dev decode / validation)")


if __name__ == "__main__":
    main()
