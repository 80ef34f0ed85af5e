"""Where a training epoch goes: torch.profiler over one whole epoch of the real trainer, dev decode included.

Run (from the repository root, on the whole machine)::

    cpu-run -n 2 .venv/bin/python bench/profile_epoch.py --max-batch 8 32 [--recipe recipes/synth_timit/demo.yaml]

For each ``--max-batch``, ``lstm_asr.training.train.train`` runs one epoch of the issue-16 network (3x250 BLSTM,
no frame stacking, dropout 0.15, no SpecAugment: the ``--set`` defaults below) on the recipe's prepared corpus,
under ``torch.profiler`` from the start of the epoch until the first dev decode has been scored (the final
dev/test scoring of the finished run is not part of it). The data loading (``FeatureSplit.batch``), the dev decode
and the checkpoint writes are labelled regions; every operator's self time is put in one bucket (LSTM forward and
backward, reversal, the output layer, log-softmax, CTC, dropout, optimiser, ...). What no operator or region
accounts for is the trainer's own Python (progress bar, bookkeeping).

Also reported per batch size, computed from the lengths alone: real / padded frames per epoch of our length
bucketing, and of SpeechBrain's batches (sorted by duration, fixed batch size, as its TIMIT recipe does).
Prints JSON and a table.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import time
from pathlib import Path
from typing import Any

import benchlib  # first: it puts the repository root on sys.path
import numpy as np
from torch.profiler import ProfilerActivity, profile, record_function

from lstm_asr.data import feature_store
from lstm_asr.data.batching import bucket_batches
from lstm_asr.recipe import load_recipe
from lstm_asr.training import train as train_module

# The network and regime of issue 16's side-by-side comparison with SpeechBrain (3x250, full frame rate).
ISSUE16_SETTINGS = ["model.hidden=250", "model.layers=3", "model.stack_frames=1", "model.subsample=1",
                    "model.dropout=0.15", "training.max_frames=100000", "training.spec_time_masks=0",
                    "training.spec_freq_masks=0", "training.max_epochs=1", "training.log_every=1000000"]

# Operator name (substring, first match wins) -> bucket. Self times, so nothing is counted twice.
BUCKETS: list[tuple[str, str]] = [
    ("mkldnn_rnn_layer_backward", "LSTM backward"),
    ("rnn_layer_backward", "LSTM backward"),
    ("mkldnn_rnn", "LSTM forward"),
    ("aten::lstm", "LSTM forward"),
    ("_thnn_fused_lstm", "LSTM forward"),
    ("ctc_loss", "CTC loss (fwd+bwd)"),
    ("log_softmax", "log-softmax (fwd+bwd)"),
    ("_softmax", "log-softmax (fwd+bwd)"),
    ("gather", "reversal (gather/scatter)"),
    ("scatter", "reversal (gather/scatter)"),
    ("index_select", "reversal (gather/scatter)"),
    ("index_add", "reversal (gather/scatter)"),
    ("reverse_padded", "reversal (gather/scatter)"),
    ("bernoulli", "dropout"),
    ("dropout", "dropout"),
    ("addmm", "output layer (linear)"),
    ("aten::mm", "output layer (linear)"),
    ("linear", "output layer (linear)"),
    ("aten::cat", "concatenation / copies"),
    ("copy_", "concatenation / copies"),
    ("contiguous", "concatenation / copies"),
    ("slice_backward", "concatenation / copies"),
    ("clone", "concatenation / copies"),
    ("Optimizer.step", "optimiser (Adam) + clipping"),
    ("_foreach", "optimiser (Adam) + clipping"),
    ("norm", "optimiser (Adam) + clipping"),
    ("clip", "optimiser (Adam) + clipping"),
    ("zero_", "optimiser (Adam) + clipping"),
]
# Labelled regions: everything inside one (its operators included) counts as the region.
REGIONS = {"data_loading": "data loading (FeatureSplit.batch)", "dev_decode": "dev decode + scoring",
           "checkpoint": "checkpoint writes"}


def bucket_of(name: str) -> str:
    for key, bucket in BUCKETS:
        if key in name:
            return bucket
    return "other operators"


def padding_stats(lengths: np.ndarray, max_frames: int, max_batch: int, seed: int) -> dict[str, Any]:
    """Real and padded frames of one epoch: our bucketing (epoch 1 of ``seed``) and SpeechBrain's sorted batches."""
    real = int(lengths.sum())
    ours = bucket_batches(lengths, max_frames, max_batch, seed=seed, epoch=1)
    ours_padded = int(sum(len(b) * lengths[b].max() for b in ours))
    order = np.sort(lengths)  # SpeechBrain's TIMIT recipe: sorting: ascending, batch_size utterances per batch
    sb_padded = int(sum(len(c) * c.max() for c in np.array_split(order, range(max_batch, len(order), max_batch))))
    return {"real_frames": real, "ours_padded_frames": ours_padded, "ours_batches": len(ours),
            "ours_real_over_padded": round(real / ours_padded, 4), "speechbrain_padded_frames": sb_padded,
            "speechbrain_real_over_padded": round(real / sb_padded, 4)}


class _FirstDevDecode:
    """Wraps ``decode_split`` in the trainer: labels its first call (the epoch's dev decode) and counts calls."""

    def __init__(self, decode: Any) -> None:
        self.decode, self.calls = decode, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls > 1:
            return self.decode(*args, **kwargs)
        with record_function("dev_decode"):
            return self.decode(*args, **kwargs)


def profile_epoch(recipe_path: str, max_batch: int, out: Path, extra: list[str]) -> dict[str, Any]:
    recipe = load_recipe(recipe_path, ISSUE16_SETTINGS + [f"training.max_batch={max_batch}"] + extra)
    shutil.rmtree(out, ignore_errors=True)
    batch_fn = feature_store.FeatureSplit.batch
    decode_fn, score_fn = train_module.decode_split, train_module.score_split
    save_fn = train_module.save_checkpoint

    def batch(self: Any, indices: Any) -> Any:
        with record_function("data_loading"):
            return batch_fn(self, indices)

    def save(*args: Any, **kwargs: Any) -> Any:
        with record_function("checkpoint"):
            return save_fn(*args, **kwargs)

    marks: dict[str, float] = {}
    prof = profile(activities=[ProfilerActivity.CPU])
    wrapped = _FirstDevDecode(decode_fn)

    def score(*args: Any, **kwargs: Any) -> Any:
        if wrapped.calls == 1 and "stop" not in marks:
            with record_function("dev_decode"):
                result = score_fn(*args, **kwargs)
            prof.stop()
            marks["stop"] = time.perf_counter()
            return result
        return score_fn(*args, **kwargs)

    feature_store.FeatureSplit.batch = batch  # type: ignore[method-assign]
    train_module.decode_split, train_module.score_split = wrapped, score  # type: ignore[assignment]
    train_module.save_checkpoint = save  # type: ignore[assignment]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # Loading the splits and the normalisation statistics happen once per run, before the epoch: the profile
            # starts at the first batch (the first data_loading call).
            original_batch = batch

            def first_batch(self: Any, indices: Any) -> Any:
                if "start" not in marks:
                    marks["start"] = time.perf_counter()
                    prof.start()
                return original_batch(self, indices)

            feature_store.FeatureSplit.batch = first_batch  # type: ignore[method-assign]
            train_module.train(recipe, out, show_progress=False)
    finally:
        feature_store.FeatureSplit.batch = batch_fn  # type: ignore[method-assign]
        train_module.decode_split, train_module.score_split = decode_fn, score_fn
        train_module.save_checkpoint = save_fn
    wall = marks["stop"] - marks["start"]
    buckets: dict[str, float] = {}
    for evt in prof.events():
        # Operators inside a labelled region (the dev decode, data loading, checkpoints) count as that region.
        region, parent = None, evt
        while parent is not None:
            if parent.name in REGIONS:
                region = parent.name
            parent = parent.cpu_parent
        b = REGIONS[region] if region else bucket_of(evt.name)
        buckets[b] = buckets.get(b, 0.0) + evt.self_cpu_time_total / 1e6
    buckets["trainer Python (not in any operator)"] = max(wall - sum(buckets.values()), 0.0)
    import json

    epoch = next(r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["kind"] == "epoch")
    top = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:25]
    split_lengths = np.asarray(json.loads((Path(recipe.features.store) / recipe.corpus.train_split / "index.json")
                                          .read_text())["num_frames"])
    return {
        "max_batch": max_batch, "wall_s": round(wall, 2), "train_seconds": epoch["epoch_seconds"],
        "train_frames_per_s": epoch["frames_per_s"], "dev_per": epoch["dev_per"],
        "buckets_s": {k: round(v, 2) for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
        "top_operators_self_s": {e.key: round(e.self_cpu_time_total / 1e6, 3) for e in top},
        "padding": padding_stats(split_lengths, recipe.training.max_frames, max_batch, recipe.training.seed),
    }


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2)
    ap.add_argument("--recipe", default="recipes/synth_timit/demo.yaml")
    ap.add_argument("--max-batch", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides (key=value)")
    ap.add_argument("--work", default="/tmp/profile_epoch")
    args = ap.parse_args()
    benchlib.start(args)
    extra = [f"training.threads={args.threads}", *args.set]
    runs = [profile_epoch(args.recipe, mb, Path(args.work) / f"b{mb}", extra) for mb in args.max_batch]
    benchlib.emit({"config": benchlib.config(args), "settings": ISSUE16_SETTINGS, "runs": runs}, args.json)
    names = list(dict.fromkeys(k for r in runs for k in r["buckets_s"]))
    rows = [(n, *(r["buckets_s"].get(n, 0.0) for r in runs), *(100 * r["buckets_s"].get(n, 0.0) / r["wall_s"]
                                                                 for r in runs)) for n in names]
    rows.append(("epoch wall (profiled)", *(r["wall_s"] for r in runs), *(100.0 for _ in runs)))
    print()
    benchlib.print_table(rows, [("where", "<40"), *((f"b{r['max_batch']} s", ">8.1f") for r in runs),
                                *((f"b{r['max_batch']} %", ">6.1f") for r in runs)])
    for r in runs:
        p = r["padding"]
        print(f"batch {r['max_batch']}: train {r['train_seconds']} s, {r['train_frames_per_s']:,.0f} frames/s; "
              f"real/padded frames: ours {p['ours_real_over_padded']:.3f} ({p['ours_padded_frames']:,} padded, "
              f"{p['ours_batches']} batches), SpeechBrain sorted {p['speechbrain_real_over_padded']:.3f}")


if __name__ == "__main__":
    main()
