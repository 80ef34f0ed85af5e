"""Stacked bidirectional LSTM with a CTC head.

The backward direction of each layer runs a unidirectional ``nn.LSTM`` over *per-sequence reversed* inputs:
utterance ``b`` of length ``L_b`` is reversed over its first ``L_b`` frames only, so its padding stays at the end
and never reaches the backward state of any real frame. Measured on this 2-core CPU (``bench/bench_blstm.py``),
this trains several times faster than ``pack_padded_sequence`` while giving each utterance exactly the outputs it
gets alone in a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import LstmAsrError
from .features import Normalizer


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; stored in every checkpoint so a model can be rebuilt without its recipe."""

    input_dim: int
    num_classes: int  # labels + blank (blank is class 0)
    hidden: int = 250
    layers: int = 3
    dropout: float = 0.0
    init: str = "default"  # "default" (PyTorch's) or "uniform" (Graves 2013: U(-init_scale, init_scale))
    init_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.init not in ("default", "uniform"):
            raise LstmAsrError(f"model.init: unknown initialisation {self.init!r} (use 'default' or 'uniform')")
        if self.layers < 1 or self.hidden < 1 or self.input_dim < 1 or self.num_classes < 2:
            raise LstmAsrError("model: layers, hidden, input_dim must be >= 1 and num_classes >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise LstmAsrError(f"model.dropout: {self.dropout} is not in [0, 1)")


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a batch-first padded tensor within its own length.

    ``x`` is (B, T, ...); frame ``t < L_b`` of sequence ``b`` moves to ``L_b - 1 - t``; padding frames stay where
    they are. The same call undoes it. One gather, no loop over sequences or frames.
    """
    batch, time = x.shape[0], x.shape[1]
    t = torch.arange(time, device=x.device).unsqueeze(0).expand(batch, time)
    lens = lengths.to(x.device).unsqueeze(1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    idx = idx.view(batch, time, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, idx)


class BiLSTMLayer(nn.Module):
    """One bidirectional layer: forward LSTM on the inputs, backward LSTM on per-sequence reversed inputs."""

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.fwd = nn.LSTM(input_dim, hidden, batch_first=True)
        self.bwd = nn.LSTM(input_dim, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(reverse_padded(x, lengths))
        return torch.cat([out_f, reverse_padded(out_b, lengths)], dim=-1)


class BLSTMCTC(nn.Module):
    """Normalisation -> stacked BLSTM -> linear -> log-softmax over blank + labels.

    ``forward(features (B, T, D), lengths (B,))`` takes un-normalised features and returns log-probabilities
    (B, T, C). Outputs at padded frames are meaningless and must be ignored (the CTC loss and decoders use
    ``lengths``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Feature normalisation lives in the model so checkpoints and exports carry the training statistics.
        self.normalizer = Normalizer(config.input_dim)
        dims = [config.input_dim] + [2 * config.hidden] * (config.layers - 1)
        self.layers = nn.ModuleList(BiLSTMLayer(d, config.hidden) for d in dims)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(2 * config.hidden, config.num_classes)
        if config.init == "uniform":
            for p in self.parameters():
                nn.init.uniform_(p, -config.init_scale, config.init_scale)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(features)
        for layer in self.layers:
            # Dropout on each layer's output (Graves-style), never on the input features.
            x = self.dropout(layer(x, lengths))
        return torch.log_softmax(self.output(x), dim=-1)

    def num_parameters(self) -> int:
        """Number of trainable weights (Graves 2013 quotes 3.8M for 3x250 with 123 inputs and 62 outputs)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean per-utterance CTC loss (negative log likelihood, nats) of a batch.

    ``log_probs`` is (B, T, C) batch-first; ``targets`` is the concatenation of all label sequences. Computed in
    float32 even under autocast, since the CTC recursions underflow in half precision. ``zero_infinity`` stays off:
    infeasible utterances are filtered (and counted) before training, so an infinite loss is a real fault.
    """
    lp = log_probs.float().transpose(0, 1)
    return nn.functional.ctc_loss(lp, targets, lengths, target_lengths, blank=0, reduction="sum",
                                  zero_infinity=False) / log_probs.shape[0]


def ctc_min_frames(labels: torch.Tensor | list[int]) -> int:
    """Fewest frames CTC needs to emit ``labels``: one per label plus a blank between each repeated pair."""
    seq = list(labels.tolist() if isinstance(labels, torch.Tensor) else labels)
    repeats = sum(1 for a, b in zip(seq, seq[1:], strict=False) if a == b)
    return len(seq) + repeats
