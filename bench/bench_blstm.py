"""Padding strategies for a BLSTM training step on CPU: per-sequence reversal (ours) vs the alternatives.

Prints a JSON object and a table. Run: ``.venv/bin/python bench/bench_blstm.py [--threads 2] [--repeats 5]
[--variants reversal,sequential,gather,fused,packed]``. Variants (one forward + CTC + backward + Adam step of a 3x250
BLSTM-CTC on a padded batch whose lengths are 85-100% of the longest, timed in interleaved rounds):

* ``reversal``: the model as it is (``lstm_asr/nn/cells.py``): per-sequence reversal as a self-inverse row
  permutation (its gradient is the same permutation), the backward direction's outputs written back in time order
  straight into the layer's output.
* ``sequential``: ``reversal`` with the layer's two directions run one after the other on all threads instead of
  at the same time on one core each (``lstm_asr/nn/direction_threads.py``).
* ``gather``: the same network as it was before issue 16 (directions one after the other): reversal by
  ``torch.gather`` (whose gradient is a zero fill and a scatter-add) and ``torch.cat`` of the directions.
* ``fused``: one ``nn.LSTM(num_layers=3, bidirectional=True)`` call on the padded batch, as SpeechBrain runs it.
  NOT padding-safe (the backward direction reads the padding first): the speed that exactness forgoes.
* ``packed``: ``pack_padded_sequence`` + bidirectional ``nn.LSTM``: exact, but off oneDNN's fused kernel.

``reversal``, ``sequential``, ``gather`` and ``packed`` compute the same function (padding never reaches the
backward direction; ``tests/test_model.py`` checks it for ours); only speed differs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import benchlib
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_asr.nn.cells import BiRNNLayer, join_directions, reversal_rows, reverse_padded
from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss


class PackedBLSTMCTC(nn.Module):
    """The same network shape built on one bidirectional nn.LSTM fed packed sequences."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * cfg.hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        return torch.log_softmax(self.output(out), dim=-1)


class FusedBLSTMCTC(nn.Module):
    """One bidirectional multi-layer nn.LSTM call on the padded batch (padding reaches the backward direction)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.input_dim, cfg.hidden, cfg.layers, batch_first=True, bidirectional=True)
        self.output = nn.Linear(2 * cfg.hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.output(self.lstm(x)[0]), dim=-1)


def gather_reverse(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The per-sequence reversal as it was before issue 16: a gather with an index as large as ``x``."""
    batch, steps = x.shape[0], x.shape[1]
    t = torch.arange(steps).unsqueeze(0).expand(batch, steps)
    lens = lengths.unsqueeze(1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    return torch.gather(x, 1, idx.view(batch, steps, 1).expand_as(x))


class GatherLayer(BiRNNLayer):
    """A bidirectional nn.LSTM layer with the pre-issue-16 reversal (gather) and concatenation."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(gather_reverse(x, lengths))
        return torch.cat([out_f, gather_reverse(out_b, lengths)], dim=-1)


class SequentialLayer(BiRNNLayer):
    """Our layer with its directions one after the other (all threads each), as before concurrent directions."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[0], x.shape[1]
        rows = reversal_rows(lengths, batch, steps, x.device)
        out_f, out_b = self.fwd(x)[0], self.bwd(reverse_padded(x, lengths))[0]
        return join_directions(out_f, out_b, lengths, rows)


def with_layers(layer: type[BiRNNLayer]) -> Callable[[ModelConfig], BLSTMCTC]:
    def build(cfg: ModelConfig) -> BLSTMCTC:
        model = BLSTMCTC(cfg)
        dims = [cfg.input_dim * cfg.stack_frames] + [2 * cfg.hidden] * (cfg.layers - 1)
        model.layers = nn.ModuleList(layer(d, cfg.hidden) for d in dims)
        return model

    return build


VARIANTS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "reversal": BLSTMCTC, "sequential": with_layers(SequentialLayer), "gather": with_layers(GatherLayer),
    "fused": FusedBLSTMCTC, "packed": PackedBLSTMCTC}


def training_step(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                  target_lengths: torch.Tensor) -> Callable[[], None]:
    """One training step of ``model`` on the batch (forward, CTC loss, backward, Adam), as a function to time."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    out_lengths = model.output_lengths(lengths) if isinstance(model, BLSTMCTC) else lengths  # frame stacking

    def step() -> None:
        opt.zero_grad()
        loss = ctc_loss(model(x, lengths), out_lengths, targets, target_lengths)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=5)
    benchlib.add_shape_options(ap)
    ap.add_argument("--variants", default="reversal,sequential,gather,fused,packed", help="comma-separated, of: "
                    + ", ".join(VARIANTS))
    ap.add_argument("--stack-frames", type=int, default=1, help="model.stack_frames = model.subsample for the "
                    "variants built on our model (3: the demo recipe's 30 ms rate); fused and packed ignore it")
    ap.add_argument("--dropout", type=float, default=0.0, help="model.dropout (our model's variants)")
    args = ap.parse_args()
    benchlib.start(args)
    names = args.variants.split(",")
    if unknown := [n for n in names if n not in VARIANTS]:
        raise SystemExit(f"--variants: unknown {', '.join(unknown)} (use {', '.join(VARIANTS)})")
    cfg = ModelConfig(input_dim=123, num_classes=62, hidden=args.hidden, layers=args.layers, dropout=args.dropout,
                      stack_frames=args.stack_frames, subsample=args.stack_frames)
    b, t = args.batch, args.frames
    # Lengths spread as in a length-bucketed batch: 85-100% of the longest.
    lengths = torch.randint(int(0.85 * t), t + 1, (b,))
    lengths[0] = t
    x = torch.randn(b, t, 123)
    target_lengths = torch.full((b,), t // 8)
    targets = torch.randint(1, 62, (int(target_lengths.sum()),))
    steps = {}
    for n in names:
        torch.manual_seed(0)
        steps[n] = training_step(VARIANTS[n](cfg), x, lengths, targets, target_lengths)
        steps[n]()  # untimed: warms up allocators and kernels
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(args.repeats):  # interleaved rounds: load from other processes hits every variant alike
        for n in names:
            t0 = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - t0)
    frames = float(lengths.sum())
    results: dict = {n: {"median_step_s": statistics.median(v), "frames_per_s": frames / statistics.median(v)}
                     for n, v in times.items()}
    base = results.get("reversal")
    if base:
        for n in names:
            results[n]["time_over_reversal"] = results[n]["median_step_s"] / base["median_step_s"]
    results["config"] = benchlib.config(args)
    benchlib.emit(results, args.json)
    benchlib.print_table([(n, results[n]["median_step_s"], results[n]["frames_per_s"],
                           results[n].get("time_over_reversal", float("nan"))) for n in names],
                         [("variant", "<10"), ("step s", ">8.3f"), ("frames/s", ">10.0f"), ("x reversal", ">11.2f")])


if __name__ == "__main__":
    main()
