"""Padding strategies for a BLSTM training step on CPU: per-sequence reversal (ours) vs pack_padded_sequence.

Prints a JSON object and a table. Run: ``.venv/bin/python bench/bench_blstm.py [--threads 2] [--repeats 5]``.
Both variants compute the same function (padding never reaches the backward direction); only speed differs.
"""

from __future__ import annotations

from collections.abc import Callable

import benchlib
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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


def training_step(model: nn.Module, x: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
                  target_lengths: torch.Tensor) -> Callable[[], None]:
    """One training step of ``model`` on the batch (forward, CTC loss, backward, Adam), as a function to time."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> None:
        opt.zero_grad()
        loss = ctc_loss(model(x, lengths), lengths, targets, target_lengths)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = benchlib.parser(__doc__, threads=2, repeats=5)
    benchlib.add_shape_options(ap)
    args = ap.parse_args()
    benchlib.start(args)
    cfg = ModelConfig(input_dim=123, num_classes=62, hidden=args.hidden, layers=args.layers)
    b, t = args.batch, args.frames
    # Lengths spread as in a length-bucketed batch: 85-100% of the longest.
    lengths = torch.randint(int(0.85 * t), t + 1, (b,))
    lengths[0] = t
    x = torch.randn(b, t, 123)
    target_lengths = torch.full((b,), t // 8)
    targets = torch.randint(1, 62, (int(target_lengths.sum()),))
    results = {}
    for name, model in (("reversal", BLSTMCTC(cfg)), ("packed", PackedBLSTMCTC(cfg))):
        # One untimed step first: it warms up allocators and kernels.
        med = benchlib.median_ms(training_step(model, x, lengths, targets, target_lengths), args.repeats) / 1000.0
        results[name] = {"median_step_s": med, "frames_per_s": float(lengths.sum()) / med}
    results["packed_over_reversal_time"] = results["packed"]["median_step_s"] / results["reversal"]["median_step_s"]
    results["config"] = benchlib.config(args)
    benchlib.emit(results, args.json)
    benchlib.print_table([(n, results[n]["median_step_s"], results[n]["frames_per_s"]) for n in ("reversal", "packed")],
                         [("variant", "<10"), ("step s", ">8.3f"), ("frames/s", ">10.0f")])
    print(f"packed is {results['packed_over_reversal_time']:.2f}x slower per step")


if __name__ == "__main__":
    main()
