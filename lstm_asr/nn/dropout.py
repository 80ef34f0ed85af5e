"""Dropout whose mask is drawn in bulk on the CPU.

torch's CPU dropout draws its Bernoulli mask one element at a time from a serial Mersenne twister, in double
precision: in an epoch of the 3x250 BLSTM at dropout 0.15 on 2 cores that was 5.6 s of 108 (``bench/RESULTS.md``,
issue 16), while both cores but one waited. Here the mask comes from numpy's PCG64 filling float32 uniforms in
bulk (about 3x faster for the whole dropout, forward and backward), seeded by one draw from torch's generator per
call, so a run stays reproducible from ``training.seed`` and resumes exactly (the trainer saves torch's generator
state). Tensors on other devices use torch's own dropout.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Dropout(nn.Module):
    """Inverted dropout: in training, each element is zeroed with probability ``p`` and the rest scaled by
    1 / (1 - p); in evaluation, the identity. A drop-in for ``nn.Dropout`` (no parameters or buffers, so
    checkpoints are unchanged)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability {p} is not in [0, 1]")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu" or self.p == 1.0:
            return nn.functional.dropout(x, self.p, training=True)
        seed = int(torch.randint(0, 2**62, ()))  # from torch's generator: seeded and saved with the run
        uniform = np.random.Generator(np.random.PCG64(seed)).random(x.shape, dtype=np.float32)
        # In place on the uniforms: 1.0 where kept (u >= p), then scaled; one float mask, as nn.Dropout keeps.
        mask = torch.from_numpy(uniform).ge_(self.p).mul_(1.0 / (1.0 - self.p)).to(x.dtype)
        return x * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"
