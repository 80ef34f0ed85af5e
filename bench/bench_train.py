"""The real trainer's speed against a bare training loop, and the per-epoch speed-up of frame stacking x3.

Run: ``.venv/bin/python bench/bench_train.py [--threads 2] [--rounds 3] [--work /tmp/bench_train]``.
Prints JSON and a table.

A generated TIMIT-layout corpus (``tests/fake_timit.py``: tones for phones, 123-dim fbank+energy+deltas) is
prepared once. Each round then runs, one after the other (interleaved, so load from other processes on a shared
machine hits all alike):

* ``trainer``: ``lstm_asr.training.train.train`` for one epoch of a 3x250 BLSTM
  (data loading from the memory-mapped store,
  length bucketing, CTC, clipping, Adam, a metrics.jsonl line per step); its epoch frames/s is what it logs itself
  (the dev decode after the epoch is not part of it);
* ``bare``: forward + CTC + backward + Adam over exactly the trainer's batches, already padded in memory;
* ``trainer_stack3``: the trainer with ``model.stack_frames=3 model.subsample=3`` (30 ms rate, Sak et al. 2015).

Reported: medians over rounds, trainer / bare frames/s (target >= 0.9) and plain / stacked epoch time (>= 2.5).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import benchlib  # first: it puts tests/ (fake_timit) on sys.path
import torch
import yaml
from fake_timit import make_fake_timit

from lstm_asr.data.batching import bucket_batches
from lstm_asr.data.prep import load_splits
from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.recipe import load_recipe
from lstm_asr.training.train import train


def write_recipe(work: Path, corpus: Path, threads: int, hidden: int, layers: int, max_batch: int,
                 **model: int) -> Path:
    data = {
        "corpus": {"path": str(corpus), "dev_split": "dev", "test_split": "dev"},
        "features": {"store": str(work / "features")},
        "model": {"hidden": hidden, "layers": layers, **model},
        "training": {"optimizer": "adam", "lr": 1e-3, "max_epochs": 1, "max_frames": 10**6, "max_batch": max_batch,
                     "patience": 5, "threads": threads, "log_every": 1, "seed": 0},
    }
    name = "stack3" if model else "plain"
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trainer_epoch(recipe_path: Path, out: Path) -> dict[str, float]:
    """One epoch of the real trainer; its own epoch record (train frames/s and seconds, dev decode excluded)."""
    import contextlib
    import io
    import shutil

    shutil.rmtree(out, ignore_errors=True)  # a fresh run: an old metrics.jsonl there would be read instead
    with contextlib.redirect_stdout(io.StringIO()):
        train(load_recipe(recipe_path), out, show_progress=False)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["kind"] == "epoch")
    return {"frames_per_s": epoch["frames_per_s"], "epoch_s": epoch["epoch_seconds"]}


def bare_epoch(batches: list[tuple[torch.Tensor, ...]], cfg: ModelConfig) -> dict[str, float]:
    """The same batches through forward + CTC + backward + Adam, nothing else."""
    torch.manual_seed(0)
    model = BLSTMCTC(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    frames = 0
    start = time.perf_counter()
    for feats, lengths, targets, target_lengths in batches:
        opt.zero_grad(set_to_none=True)
        ctc_loss(model(feats, lengths), lengths, targets, target_lengths).backward()
        opt.step()
        frames += int(lengths.sum())
    seconds = time.perf_counter() - start
    return {"frames_per_s": frames / seconds, "epoch_s": seconds}


def link_subset(root: Path, out: Path, speakers: int) -> Path:
    """A TIMIT tree of symlinks: the first ``speakers`` TRAIN speaker folders of ``root`` and all of TEST."""
    if not (out / "TRAIN").is_dir():
        train = next(p for p in root.iterdir() if p.name.upper() == "TRAIN")
        test = next(p for p in root.iterdir() if p.name.upper() == "TEST")
        for spk in sorted(p for p in train.glob("*/*") if p.is_dir())[:speakers]:
            (out / "TRAIN" / spk.parent.name).mkdir(parents=True, exist_ok=True)
            (out / "TRAIN" / spk.parent.name / spk.name).symlink_to(spk.resolve())
        (out / "TEST").symlink_to(test.resolve())
    return out


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2)
    ap.add_argument("--rounds", type=int, default=3)
    benchlib.add_shape_options(ap, batch=False)  # batches come from the trainer's bucketing (--max-batch)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--utts", type=int, default=24, help="utterances per speaker")
    ap.add_argument("--work", default="/tmp/bench_train")
    ap.add_argument("--corpus", default="", help="a TIMIT-layout corpus to train on instead of tones (e.g. the "
                    "generated data/synth_timit/corpus, ~3 s utterances): its first --speakers TRAIN speakers")
    args = ap.parse_args()
    benchlib.start(args)
    work = Path(args.work)
    corpus = work / "TIMIT"
    if args.corpus:
        corpus = link_subset(Path(args.corpus), work / f"subset{args.speakers}", args.speakers)
    elif not (corpus / "TRAIN").is_dir():
        make_fake_timit(corpus, n_train=args.speakers, n_dev=1, n_core=1, utts_per_speaker=args.utts)
    plain = write_recipe(work, corpus, args.threads, args.hidden, args.layers, args.max_batch)
    stacked = write_recipe(work, corpus, args.threads, args.hidden, args.layers, args.max_batch,
                           stack_frames=3, subsample=3)
    recipe = load_recipe(plain)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        split = load_splits(recipe, show_progress=False)["train"]
    t = recipe.training
    # The trainer's epoch-1 batches (same seed, same bucketing), padded up front.
    batches = [split.batch(idx) for idx in bucket_batches(split.num_frames, t.max_frames, t.max_batch, seed=t.seed,
                                                          epoch=1)]
    cfg = ModelConfig(input_dim=split.dim, num_classes=len(split.index["tokens"]), hidden=args.hidden,
                      layers=args.layers)
    runs: dict[str, list[dict[str, float]]] = {"trainer": [], "bare": [], "trainer_stack3": []}
    for rnd in range(args.rounds + 1):
        r = {"trainer": trainer_epoch(plain, work / f"exp_plain_{rnd}"), "bare": bare_epoch(batches, cfg),
             "trainer_stack3": trainer_epoch(stacked, work / f"exp_stack3_{rnd}")}
        if rnd:  # round 0 warms up (first prep of the store, allocators)
            for k, v in r.items():
                runs[k].append(v)
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("frames_per_s", "epoch_s")} for k, v in runs.items()}
    results = {
        "config": benchlib.config(args), "train_utterances": len(split), "train_frames": int(split.num_frames.sum()),
        "batches_per_epoch": len(batches), "mean_batch_frames": round(float(split.num_frames.sum()) / len(batches)),
        "runs": runs, "median": med,
        "trainer_over_bare_frames_per_s": round(med["trainer"]["frames_per_s"] / med["bare"]["frames_per_s"], 3),
        "stack3_epoch_speedup": round(med["trainer"]["epoch_s"] / med["trainer_stack3"]["epoch_s"], 3),
    }
    benchlib.emit(results, args.json)
    print()
    benchlib.print_table([(k, v["frames_per_s"], v["epoch_s"]) for k, v in med.items()],
                         [("run", "<16"), ("frames/s", ">9,.0f"), ("epoch s", ">8.2f")])
    print(f"trainer / bare frames/s: {results['trainer_over_bare_frames_per_s']:.3f} (target >= 0.9)")
    print(f"stacking x3 epoch speed-up: {results['stack3_epoch_speedup']:.2f}x (target >= 2.5)")
    print(f"({len(split)} utterances, {results['train_frames']} frames, {len(batches)} batches per epoch, "
          f"{args.threads} threads, medians of {args.rounds} interleaved rounds)")


if __name__ == "__main__":
    main()
