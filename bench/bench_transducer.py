"""RNN transducer costs: training step against CTC at the same encoder, peak memory of the joint network's lattice,
and beam-search speed on a trained model.

Run: ``.venv/bin/python bench/bench_transducer.py [--threads 2] [--repeats 5] [--memory] [--search EXP]``.
Prints JSON and tables.

* ``steps``: one training step (forward, loss, backward, SGD) of the same 3x250 BLSTM encoder with the CTC head and
  with the transducer head (prediction network 250, joint 250), at the full 10 ms rate and with 3 stacked frames
  (30 ms), on the same batch (32 utterances of 255-300 frames, 123 features, 61 labels + blank, ~1 label per 12
  frames as in TIMIT). Steps are interleaved, so load from other processes hits all alike; ratios to CTC come from
  the same run.
* ``--memory``: one subprocess per configuration at 32 x ``--memory-frames`` (1,000) frames: peak resident memory
  of one training step (VmHWM after resetting the kernel's peak mark), and the lattice memory the joint network
  and loss need (:func:`lstm_asr.nn.transducer.lattice_bytes`). ``joint_budget_mb`` bounds it: the batch's lattice
  is computed in groups of utterances that fit, each recomputed in the backward pass. The unbounded full-rate case
  at 32 x 1,000 would need ~11 GB, more than this shared machine can spare, so it is measured at
  ``--unbounded-batch`` (8) utterances and its 32-utterance lattice given from the formula.
* ``--search EXP``: greedy and beam search (beams 4, 16, 100) on a trained transducer experiment's encoder frames
  for the first ``--utterances`` core-test utterances: milliseconds of search per second of audio (the network's
  forward pass excluded) and the share of utterances whose best hypothesis equals greedy's.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib
import torch

from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.nn.transducer import Transducer, lattice_bytes

CONFIGS: dict[str, dict] = {
    "ctc": {},
    "transducer": {"head": "transducer"},
    "ctc_stack3": {"stack_frames": 3, "subsample": 3},
    "transducer_stack3": {"head": "transducer", "stack_frames": 3, "subsample": 3},
}


def build(name: str, hidden: int, layers: int, budget_mb: float) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    cfg = ModelConfig(input_dim=123, num_classes=62, hidden=hidden, layers=layers, **CONFIGS[name])
    model = Transducer(cfg) if cfg.head == "transducer" else BLSTMCTC(cfg)
    if isinstance(model, Transducer):
        model.joint_budget_mb = budget_mb
    return model, torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)


def step(model: torch.nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> float:
    x, lengths, targets, target_lengths = batch
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    if isinstance(model, Transducer):
        loss = model(x, lengths, targets, target_lengths)
    else:
        loss = ctc_loss(model(x, lengths), model.output_lengths(lengths), targets, target_lengths)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def lattice_mib(name: str, batch: tuple[torch.Tensor, ...], hidden: int, layers: int) -> float:
    """The lattice memory (MiB) the whole batch needs at once, from the formula."""
    model, _ = build(name, hidden, layers, 0)
    if not isinstance(model, Transducer):
        return 0.0
    _, lengths, _, target_lengths = batch
    frames = int(model.output_lengths(lengths).max())
    return lattice_bytes(len(lengths), frames, int(target_lengths.max()) + 1, model.config.joint_dim,
                         model.config.num_classes) / 2**20


def memory_child(name: str, batch: int, frames: int, hidden: int, layers: int, budget_mb: float) -> None:
    """Run in a subprocess: one training step, print peak RSS (MiB) and its growth over the RSS before it."""
    model, opt = build(name, hidden, layers, budget_mb)
    data = benchlib.ctc_batch(batch, frames)
    result = benchlib.step_peak_memory(lambda: step(model, opt, data))
    print(json.dumps({**result, "lattice_mib": round(lattice_mib(name, data, hidden, layers), 1)}))


def memory_cases(args: argparse.Namespace) -> list[tuple[str, str, int, float]]:
    """(label, config, batch, joint budget MiB) of the memory measurements."""
    big = 1e9  # no bound
    return [("ctc", "ctc", args.batch, big),
            (f"transducer, budget {args.budget:g} MiB", "transducer", args.batch, args.budget),
            ("transducer, budget 256 MiB", "transducer", args.batch, 256.0),
            (f"transducer, unbounded, batch {args.unbounded_batch}", "transducer", args.unbounded_batch, big),
            ("transducer_stack3, budget 1024 MiB", "transducer_stack3", args.batch, 1024.0)]


def search_speed(exp: Path, utterances: int, repeats: int) -> dict:
    """Search time per second of audio at greedy and beams 4/16/100 on a trained model's core-test frames."""
    from lstm_asr.data.prep import load_splits
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.recipe import load_recipe
    from lstm_asr.recognition.recognizer import Recognizer

    recipe = load_recipe(exp / "recipe.yaml")
    split = load_splits(recipe, show_progress=False)[recipe.corpus.test_split]
    rec = Recognizer.load(exp)
    idx = list(range(min(utterances, len(split))))
    feats, lengths, _, _ = split.batch(idx)
    with torch.inference_mode():
        enc = rec.model(feats, lengths)
    out_lengths = rec.model.output_lengths(lengths)
    seconds = float(lengths.sum()) * rec.features.frame_shift_ms / 1000
    out: dict = {"experiment": str(exp), "utterances": len(idx), "audio_seconds": round(seconds, 2)}
    greedy = None
    for beam in (1, 4, 16, 100):
        search = rec.searcher(SearchConfig.for_experiment(exp, beam=beam))
        ms = benchlib.median_ms(lambda s=search: s(enc, out_lengths), repeats, warmup=0 if beam > 4 else 1)
        best = [n[0].tokens for n in search(enc, out_lengths)]
        if greedy is None:
            greedy = best
        out[f"beam_{beam}"] = {"ms_per_audio_second": round(ms / seconds, 2),
                               "same_as_greedy": round(sum(a == b for a, b in zip(best, greedy, strict=True))
                                                       / len(best), 3)}
    return out


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=5)
    benchlib.add_shape_options(ap)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--memory", action="store_true", help="also peak memory at 32 x --memory-frames")
    ap.add_argument("--memory-frames", type=int, default=1000)
    ap.add_argument("--budget", type=float, default=1024.0, help="joint_budget_mb of the bounded case")
    ap.add_argument("--unbounded-batch", type=int, default=8)
    ap.add_argument("--search", default=None, help="a trained transducer experiment: search speed")
    ap.add_argument("--utterances", type=int, default=24)
    ap.add_argument("--no-steps", action="store_true", help="skip the training-step comparison")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--child-budget", type=float, default=1e9, help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchlib.start(args)
    if args.child:
        memory_child(args.child, args.batch, args.memory_frames, args.hidden, args.layers, args.child_budget)
        return
    results: dict = {"config": benchlib.config(args)}
    names = args.configs.split(",")
    if not args.no_steps:
        data = benchlib.ctc_batch(args.batch, args.frames)
        frames = int(data[1].sum())
        models = {n: build(n, args.hidden, args.layers, args.budget) for n in names}
        times = benchlib.interleaved_rounds({n: functools.partial(step, *models[n], data) for n in names},
                                            args.repeats)
        results["steps"] = {}
        for n in names:
            med = statistics.median(times[n])
            base = statistics.median(times["ctc_stack3" if "stack3" in n else "ctc"])
            results["steps"][n] = {"median_step_s": round(med, 4), "frames_per_s": round(frames / med, 1),
                                   "parameters": models[n][0].num_parameters(), "time_vs_ctc": round(med / base, 3),
                                   "lattice_mib": round(lattice_mib(n, data, args.hidden, args.layers), 1)}
    if args.memory:
        results["memory"] = {}
        for label, name, batch, budget in memory_cases(args):
            out = subprocess.run([sys.executable, __file__, "--child", name, "--batch", str(batch),
                                  "--memory-frames", str(args.memory_frames), "--hidden", str(args.hidden),
                                  "--layers", str(args.layers), "--threads", str(args.threads),
                                  "--child-budget", str(budget)], capture_output=True, text=True, check=True)
            results["memory"][label] = {"batch": batch, **json.loads(out.stdout.strip().splitlines()[-1])}
        full = benchlib.ctc_batch(args.batch, args.memory_frames)
        results["memory_unbounded_full_batch_lattice_mib"] = round(lattice_mib("transducer", full, args.hidden,
                                                                               args.layers), 1)
    if args.search is not None:
        results["search"] = search_speed(Path(args.search), args.utterances, args.repeats)
    benchlib.emit(results, args.json)
    if "steps" in results:
        print()
        benchlib.print_table([[n, r["parameters"], r["median_step_s"], r["frames_per_s"], r["time_vs_ctc"],
                               r["lattice_mib"]] for n, r in results["steps"].items()],
                             [("config", "<18"), ("params", ">10,"), ("step s", ">8.3f"), ("frames/s", ">9,.0f"),
                              ("x ctc", ">6.2f"), ("lattice MiB", ">12,.0f")])
        print(f"({args.batch} x {args.frames} frames, {args.threads} threads, medians of {args.repeats} interleaved "
              "rounds)")
    if "memory" in results:
        print()
        benchlib.print_table([[k, r["batch"], r["lattice_mib"], r["peak_rss_mib"], r["step_growth_mib"], r["step_s"]]
                              for k, r in results["memory"].items()],
                             [("case", "<40"), ("batch", ">6"), ("lattice MiB", ">12,.0f"), ("peak MiB", ">9,.0f"),
                              ("step +MiB", ">10,.0f"), ("step s", ">7.1f")])
        print(f"(x {args.memory_frames} frames; the unbounded full-rate lattice at batch {args.batch} would be "
              f"{results['memory_unbounded_full_batch_lattice_mib']:,.0f} MiB)")
    if "search" in results:
        s = results["search"]
        print()
        benchlib.print_table([[f"beam {b}" if b > 1 else "greedy", s[f"beam_{b}"]["ms_per_audio_second"],
                               s[f"beam_{b}"]["same_as_greedy"]] for b in (1, 4, 16, 100)],
                             [("search", "<8"), ("ms / audio s", ">13.2f"), ("= greedy", ">9.3f")])
        print(f"({s['utterances']} core-test utterances, {s['audio_seconds']} s of audio, {args.threads} threads)")


if __name__ == "__main__":
    main()
