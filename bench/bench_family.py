"""Training-step time of the LSTM family (issue 13) against nn.LSTM, in one run: the peephole LSTM and Greff et
al.'s eight variants, the 1997 LSTM, the ConvLSTM over frequency (as a front end and as the whole stack), the LMU;
then the LMU's parallel memory against its own step-by-step recurrence at a longer length.

Run: ``.venv/bin/python bench/bench_family.py [--threads 2] [--repeats 5] [--lmu-frames 1000]``. Prints JSON and
a table.

Part 1 is ``bench_cells.py``'s measurement: the full ``BLSTMCTC`` (normalisation, 3 bidirectional layers of 250,
linear, log-softmax) trained one step (forward, CTC loss, backward, Adam) on one batch of 32 utterances of 255-300
frames of 123 features (40 mel bins + energy, with deltas: 3 channels of 41 bins for the ConvLSTM), 62 outputs.
Steps are interleaved (one of each configuration per round), so load from other processes hits them alike;
medians and ratios to ``lstm`` come from the same run.

Part 2 times the LMU model (3 x 250, parallel memory: FFT convolution) against the same model with
``parallel = False`` (the layer stepped one frame at a time: memory update, memory and recurrent projections,
tanh, with autograd) and against nn.LSTM, on 32 utterances of up to ``--lmu-frames`` frames, interleaved likewise.
"""

from __future__ import annotations

import functools
import statistics

import benchlib
import torch
from bench_cells import step

from lstm_asr.nn.lmu import LMUBiLayer
from lstm_asr.nn.model import BLSTMCTC, ModelConfig

GREFF = ("peephole", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr")
CONFIGS: dict[str, dict] = {
    "lstm": {},
    **{name: {"cell": name} for name in GREFF},
    "lstm1997": {"cell": "lstm1997"},
    "convlstm_front": {"conv_layers": 1, "freq_bins": 41},  # 1 ConvLSTM layer under 2 nn.LSTM layers
    "convlstm_front_peephole": {"cell": "peephole", "conv_layers": 1, "freq_bins": 41},
    "convlstm": {"cell": "convlstm", "freq_bins": 41},  # 3 ConvLSTM layers
    "lmu": {"cell": "lmu"},
}


def build(options: dict, hidden: int, layers: int) -> tuple[BLSTMCTC, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=62, hidden=hidden, layers=layers, **options))
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=5)
    benchlib.add_shape_options(ap)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--lmu-frames", type=int, default=1000, help="length for part 2 (0 skips it)")
    args = ap.parse_args()
    benchlib.start(args)
    names = args.configs.split(",")
    data = benchlib.ctc_batch(args.batch, args.frames)
    frames = int(data[1].sum())
    models = {n: build(CONFIGS[n], args.hidden, args.layers) for n in names}
    times = benchlib.interleaved_rounds({n: functools.partial(step, *models[n], data) for n in names}, args.repeats,
                                        "part 1 ")
    base = statistics.median(times["lstm"]) if "lstm" in times else None
    results: dict = {"config": benchlib.config(args), "input_frames_per_step": frames, "steps": {}}
    for n in names:
        med = statistics.median(times[n])
        results["steps"][n] = {"median_step_s": round(med, 4), "min_step_s": round(min(times[n]), 4),
                               "frames_per_s": round(frames / med, 1), "parameters": models[n][0].num_parameters(),
                               "time_vs_lstm": round(med / base, 3) if base else None}
    greff = [results["steps"][n]["time_vs_lstm"] for n in GREFF if n in names and base]
    if greff:
        results["greff_max_vs_lstm"] = max(greff)
    if args.lmu_frames:
        long_batch = benchlib.ctc_batch(args.batch, args.lmu_frames, seed=1)
        long_models = {"lstm": build({}, args.hidden, args.layers), "lmu_parallel": build({"cell": "lmu"}, args.hidden,
                                                                                          args.layers)}
        stepwise = build({"cell": "lmu"}, args.hidden, args.layers)
        for layer in stepwise[0].layers:
            if isinstance(layer, LMUBiLayer):
                layer.parallel = False
        long_models["lmu_stepwise"] = stepwise
        long_times = benchlib.interleaved_rounds(
            {n: functools.partial(step, *m, long_batch) for n, m in long_models.items()}, args.repeats, "part 2 ")
        med = {n: statistics.median(t) for n, t in long_times.items()}
        results["lmu_long"] = {"frames": args.lmu_frames, "input_frames_per_step": int(long_batch[1].sum()),
                               "median_step_s": {n: round(v, 4) for n, v in med.items()},
                               "parallel_speedup_vs_stepwise": round(med["lmu_stepwise"] / med["lmu_parallel"], 2),
                               "parallel_vs_lstm": round(med["lmu_parallel"] / med["lstm"], 3)}
    benchlib.emit(results, args.json)
    print()
    rows = [[n, r["parameters"], r["median_step_s"], r["frames_per_s"], r["time_vs_lstm"] or float("nan")]
            for n, r in results["steps"].items()]
    benchlib.print_table(rows, [("config", "<24"), ("params", ">10,"), ("step s", ">8.3f"), ("frames/s", ">9,.0f"),
                                ("x lstm", ">7.2f")])
    print(f"({args.batch} x {args.frames} frames, {args.threads} threads, medians of {args.repeats} interleaved "
          f"rounds)")
    if args.lmu_frames:
        r = results["lmu_long"]
        print()
        benchlib.print_table([[n, s] for n, s in r["median_step_s"].items()], [("at " + str(args.lmu_frames)
                                                                                + " frames", "<24"),
                                                                               ("step s", ">8.3f")])
        print(f"LMU parallel memory {r['parallel_speedup_vs_stepwise']:.2f}x faster per step than step by step; "
              f"{r['parallel_vs_lstm']:.2f}x nn.LSTM's step time")


if __name__ == "__main__":
    main()
