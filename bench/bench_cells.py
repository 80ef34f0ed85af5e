"""Training-step time of each cell and frame rate, against the nn.LSTM fast path; peak memory per configuration.

Run: ``.venv/bin/python bench/bench_cells.py [--threads 2] [--repeats 7] [--memory]``. Prints JSON and a table.

Every configuration is the full ``BLSTMCTC`` (normalisation, 3 bidirectional layers of 250, linear, log-softmax)
trained one step (forward, CTC loss, backward, Adam) on the same batch: 32 utterances of 255-300 frames of 123
features, 62 outputs. The configurations' steps are *interleaved* (one of each per round), so load from other
processes on a shared machine hits them alike; medians and ratios to ``lstm`` come from the same run.

``--memory`` runs one subprocess per configuration at 32 x 1,000 frames and reports its peak resident memory
during one training step (``VmHWM`` after resetting the kernel's peak mark through ``/proc/self/clear_refs``, so
the peak of importing torch does not hide it) and the growth of that peak over the resident memory just before the
step (imports, model and batch loaded): tracemalloc does not see torch's allocations.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import time

import benchlib
import torch

from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss

CONFIGS: dict[str, dict] = {
    "lstm": {},
    "peephole": {"cell": "peephole"},
    "peephole_identity": {"cell": "peephole", "peephole_output_activation": "identity"},
    "gru": {"cell": "gru"},
    "lstmp_128": {"projection": 128},
    "lstm_stack3": {"stack_frames": 3, "subsample": 3},
    "peephole_stack3": {"cell": "peephole", "stack_frames": 3, "subsample": 3},
}


def build(name: str, hidden: int, layers: int) -> tuple[BLSTMCTC, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=62, hidden=hidden, layers=layers, **CONFIGS[name]))
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def step(model: BLSTMCTC, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, ...]) -> float:
    x, lengths, targets, target_lengths = batch
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = ctc_loss(model(x, lengths), model.output_lengths(lengths), targets, target_lengths)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def memory_child(name: str, batch: int, frames: int, hidden: int, layers: int) -> None:
    """Run in a subprocess: one warm-up-free training step, print peak RSS (MiB) before and after."""
    model, opt = build(name, hidden, layers)
    data = benchlib.ctc_batch(batch, frames)
    print(json.dumps(benchlib.step_peak_memory(lambda: step(model, opt, data))))


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=7)
    benchlib.add_shape_options(ap)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--memory", action="store_true", help="also peak memory at --memory-frames per configuration")
    ap.add_argument("--memory-frames", type=int, default=1000)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benchlib.start(args)  # in the --child subprocess too: its step runs on --threads threads
    if args.child:
        memory_child(args.child, args.batch, args.memory_frames, args.hidden, args.layers)
        return
    names = args.configs.split(",")
    data = benchlib.ctc_batch(args.batch, args.frames)
    frames = int(data[1].sum())
    models = {n: build(n, args.hidden, args.layers) for n in names}
    times = benchlib.interleaved_rounds({n: functools.partial(step, *models[n], data) for n in names}, args.repeats)
    base = statistics.median(times["lstm"]) if "lstm" in times else None
    results: dict = {"config": benchlib.config(args), "input_frames_per_step": frames, "steps": {}}
    for n in names:
        med = statistics.median(times[n])
        results["steps"][n] = {"median_step_s": round(med, 4), "min_step_s": round(min(times[n]), 4),
                               "frames_per_s": round(frames / med, 1),
                               "parameters": models[n][0].num_parameters(),
                               "time_vs_lstm": round(med / base, 3) if base else None}
    if args.memory:
        for n in names:
            out = subprocess.run([sys.executable, __file__, "--child", n, "--batch", str(args.batch),
                                  "--memory-frames", str(args.memory_frames), "--hidden", str(args.hidden),
                                  "--layers", str(args.layers), "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=True)
            results["steps"][n]["memory"] = json.loads(out.stdout.strip().splitlines()[-1])
    benchlib.emit(results, args.json)
    print()
    columns = [("config", "<18"), ("params", ">9,"), ("step s", ">8.3f"), ("frames/s", ">9,.0f"), ("x lstm", ">7.2f")]
    if args.memory:
        columns += [("peak MiB", ">9,.0f"), ("step +MiB", ">9,.0f")]
    rows = []
    for n in names:
        r = results["steps"][n]
        rows.append([n, r["parameters"], r["median_step_s"], r["frames_per_s"], r["time_vs_lstm"] or float("nan")])
        if args.memory:
            rows[-1] += [r["memory"]["peak_rss_mib"], r["memory"]["step_growth_mib"]]
    benchlib.print_table(rows, columns)
    print(f"({args.batch} x {args.frames} frames, {args.threads} threads, medians of {args.repeats} interleaved "
          f"rounds; memory at {args.batch} x {args.memory_frames} frames)")


if __name__ == "__main__":
    main()
