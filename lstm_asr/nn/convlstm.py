"""The peephole convolutional LSTM (Shi et al. 2015) over the frequency axis of filterbank features.

Each frame is a map of ``C`` channels by ``F`` frequency bins (for Kaldi fbank features with deltas: C = 1 + deltas
-- static, delta, delta-delta -- times the stacked frames, and F = the mel bins plus the energy coefficient, which
sits at bin 0 next to the lowest band). The layer's state is a map of ``K`` channels by the same ``F`` bins::

    i = sigmoid(W_xi * x_t + W_hi * h_{t-1} + w_ci . c_{t-1} + b_i)
    f = sigmoid(W_xf * x_t + W_hf * h_{t-1} + w_cf . c_{t-1} + b_f)
    c = f . c_{t-1} + i . tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
    o = sigmoid(W_xo * x_t + W_ho * h_{t-1} + w_co . c_t + b_o)
    h = o . tanh(c)

where ``*`` is a 1-D convolution along frequency (``kernel`` bins, zero-padded to keep F bins, as ``conv1d`` with
padding kernel // 2), ``.`` is the Hadamard product (the peephole weights are a K x F map each) and the biases are
one per channel.

A convolution along frequency is a linear map of the flattened (C x F) frame, so the layer writes its kernels as
banded (4KF x CF) and (4KF x KF) matrices and runs the peephole LSTM recurrence of :mod:`lstm_asr.nn.cells` with
hidden size K x F: one input matrix multiply for all frames of both directions, both directions in one
recurrence, the hand-written backward. Autograd carries the gradients of those matrices back to the kernels. The
banded matrices cost K x F / kernel times the convolution's multiply-adds, but run as a few large matrix
multiplies instead of a convolution call per time step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lstm_asr.nn.cells import GateSpec, gated_bidirectional


def shift_matrices(kernel: int, bins: int) -> torch.Tensor:
    """One-hot (kernel, F, F): entry [j, a, b] is 1 when input bin b feeds output bin a through tap j, i.e.
    b = a + j - kernel // 2 (cross-correlation with zero padding, as ``torch.nn.functional.conv1d``)."""
    j = torch.arange(kernel).view(kernel, 1, 1)
    a = torch.arange(bins).view(1, bins, 1)
    b = torch.arange(bins).view(1, 1, bins)
    return (b == a + j - kernel // 2).to(torch.get_default_dtype())


def banded(kernels: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """The (2, O x F, C x F) matrix of direction-stacked 1-D convolutions ``kernels`` (2, O, C, kernel): row
    (o, a), column (c, b) holds kernels[:, o, c, b - a + kernel // 2] inside the band and 0 outside it."""
    dirs, out_ch, in_ch, _ = kernels.shape
    bins = shifts.shape[1]
    return torch.einsum("docj,jab->doacb", kernels, shifts.to(kernels.dtype)).reshape(dirs, out_ch * bins,
                                                                                      in_ch * bins)


class ConvLSTMBiLayer(nn.Module):
    """One bidirectional peephole ConvLSTM layer over frequency (padding-safe like every layer here).

    Reads (B, T, C x F) frames (channel-major: the C maps of F bins one after the other, which is how fbank
    features with deltas, stacked frames and the output of a layer below are laid out) and returns
    (B, T, 2 x K x F): the forward direction's K maps, then the backward direction's.
    Parameters: ``input_kernel`` (2, 4K, C, kernel), ``recurrent_kernel`` (2, 4K, K, kernel), ``bias`` (2, 4K)
    (gates i, f, g, o, K channels each), ``peephole`` (2, 3, K x F) (i, f, o).
    """

    def __init__(self, input_dim: int, bins: int, channels: int, kernel: int) -> None:
        super().__init__()
        if bins < 1 or input_dim % bins:
            raise ValueError(f"{input_dim} input features are not channels of {bins} frequency bins")
        if kernel < 1 or kernel % 2 == 0 or kernel > bins:
            raise ValueError(f"kernel {kernel} must be odd and at most {bins}")
        self.bins, self.channels, self.kernel = bins, channels, kernel
        in_ch = input_dim // bins
        self.input_kernel = nn.Parameter(torch.empty(2, 4 * channels, in_ch, kernel))
        self.recurrent_kernel = nn.Parameter(torch.empty(2, 4 * channels, channels, kernel))
        self.bias = nn.Parameter(torch.empty(2, 4 * channels))
        self.peephole = nn.Parameter(torch.empty(2, 3, channels * bins))
        self.register_buffer("shifts", shift_matrices(kernel, bins), persistent=False)
        self.output_dim = 2 * channels * bins
        # nn.LSTM's rule (uniform, 1 / sqrt(fan-in of the recurrent transform)) with the convolution's fan-in.
        for p, fan_in in ((self.input_kernel, in_ch * kernel), (self.recurrent_kernel, channels * kernel),
                          (self.bias, channels * kernel), (self.peephole, channels * kernel)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        w_ih = banded(self.input_kernel, self.shifts)
        w_hh = banded(self.recurrent_kernel, self.shifts)
        bias = self.bias.repeat_interleave(self.bins, dim=1)  # one bias per channel, the same at every bin
        return gated_bidirectional(x, lengths, w_ih, w_hh, bias, self.peephole, None, GateSpec())
