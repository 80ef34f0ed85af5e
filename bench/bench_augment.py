"""What on-the-fly augmented features cost: frames/s of the batch source alone and of whole training steps.

Run: ``.venv/bin/python bench/bench_augment.py [--recipe recipes/synth_timit/demo.yaml] [--utterances 128]``
(the recipe's prepared features must exist: ``lstm-asr prep RECIPE``). Prints JSON and a table.

For the first ``--utterances`` training utterances, batched as the trainer batches them (length buckets under the
recipe's ``training.max_frames``/``max_batch``), each configuration is timed over the same batches, interleaved
over ``--repeats`` rounds (medians):

* ``source``: building the batches only -- a memory copy for the stored features; reading the audio, augmenting
  it and computing Kaldi fbank + deltas for the on-the-fly path;
* ``step``: the batches plus forward, CTC, backward and Adam of the recipe's model (what training does).

Configurations: stored features, then each augmentation alone (speed 0.9/1.0/1.1, noise, reverberation, telephone,
gain: each at probability 1, so the figure is its full cost) and the demo's combination.
"""

from __future__ import annotations

import statistics
import time

import benchlib  # first: it puts the repository root on sys.path

from lstm_asr.data.batching import bucket_batches
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.prep import feature_config, store_dir
from lstm_asr.data.wave_batches import training_batches
from lstm_asr.nn.model import ctc_loss
from lstm_asr.recipe import load_recipe
from lstm_asr.training.train import build_model, build_optimizer, normalizer_from

CONFIGS = {
    "stored": [],
    "speed": ["augment.speed=[0.9,1.0,1.1]"],
    "noise": ["augment.noise_prob=1"],
    "reverb": ["augment.reverb_prob=1"],
    "telephone": ["augment.telephone_prob=1"],
    "gain": ["augment.gain_prob=1"],
    "all (demo)": ["augment.speed=[0.9,1.0,1.1]", "augment.noise_prob=0.5", "augment.reverb_prob=0.5",
                   "augment.gain_prob=0.5"],
}


def main() -> None:
    ap = benchlib.parser(__doc__.splitlines()[0], threads=2, repeats=3)
    ap.add_argument("--recipe", default="recipes/synth_timit/demo.yaml")
    ap.add_argument("--utterances", type=int, default=128)
    args = ap.parse_args()
    benchlib.start(args)
    base = load_recipe(args.recipe)
    split = FeatureSplit(store_dir(base) / base.corpus.train_split)
    n = min(args.utterances, len(split))
    batches = bucket_batches(split.num_frames[:n], base.training.max_frames, base.training.max_batch, seed=0)
    model = build_model(base, split.dim, len(split.index["tokens"]))
    model.normalizer.load_state_dict(normalizer_from(split).state_dict())
    optimizer = build_optimizer(base, model)
    sources = {}
    for name, sets in CONFIGS.items():
        r = load_recipe(args.recipe, sets)
        sources[name] = training_batches(r, split, feature_config(r), model.output_lengths, store_dir(r))

    def run(name: str, step: bool) -> tuple[float, int]:
        t0, frames = time.perf_counter(), 0
        for b in batches:
            feats, lengths, targets, target_lengths = sources[name].batch(b, epoch=1)
            frames += int(lengths.sum())
            if step:
                optimizer.zero_grad(set_to_none=True)
                loss = ctc_loss(model(feats, lengths), model.output_lengths(lengths), targets, target_lengths)
                loss.backward()
                optimizer.step()
        return time.perf_counter() - t0, frames

    times: dict[tuple[str, bool], list[float]] = {}
    frames: dict[tuple[str, bool], int] = {}
    for name in CONFIGS:  # warm-up: RIR simulation (cached), allocators
        run(name, False)
    for _ in range(args.repeats):
        for step in (False, True):
            for name in CONFIGS:  # interleaved, so load from other processes hits all alike
                seconds, f = run(name, step)
                times.setdefault((name, step), []).append(seconds)
                frames[(name, step)] = f
    rows, result = [], {"config": benchlib.config(args), "utterances": n, "batches": len(batches), "results": {}}
    stored_step = statistics.median(times[("stored", True)])
    for name in CONFIGS:
        src_s, step_s = statistics.median(times[(name, False)]), statistics.median(times[(name, True)])
        fps_src, fps_step = frames[(name, False)] / src_s, frames[(name, True)] / step_s
        cost = step_s / stored_step * frames[("stored", True)] / frames[(name, True)]  # per frame, vs stored
        result["results"][name] = {"source_frames_per_s": round(fps_src), "step_frames_per_s": round(fps_step),
                                   "step_time_per_frame_vs_stored": round(cost, 3)}
        rows.append((name, fps_src, fps_step, cost))
    benchlib.emit(result, args.json)
    benchlib.print_table(rows, [("configuration", "<12"), ("source frames/s", ">16,.0f"),
                                ("step frames/s", ">14,.0f"), ("time/frame vs stored", ">21.2f")])


if __name__ == "__main__":
    main()
