"""The Legendre Memory Unit (Voelker, Kajić & Eliasmith, NeurIPS 2019), with its linear memory trained in parallel
over time (Chilkuri & Eliasmith, ICML 2021).

Per direction, with ``d`` = ``order``, ``theta`` the window in frames and ``M`` = ``memories`` memory inputs::

    u_t = E x_t                                       (M inputs to the memory; E is M x D)
    m_t = A_bar m_{t-1} + B_bar u_t                   (one d-dim Legendre memory per input: M x d)
    h_t = tanh(W_x x_t + W_h h_{t-1} + W_m m_t + b)   (the nonlinear hidden state of the 2019 paper)

``A_bar``, ``B_bar`` are the zero-order-hold discretisation (one frame per step) of the paper's continuous system
theta m'(t) = A m(t) + B u(t), A_ij = (2i + 1) (-1 if i < j else (-1)^(i - j + 1)), B_i = (2i + 1) (-1)^i, whose
memory holds the Legendre coefficients of the input's last ``theta`` frames. They are fixed, not trained.

The memory input depends on x only (the 2019 paper also allows encoders from h_{t-1} and m_{t-1}; Chilkuri &
Eliasmith drop them), so the memory is a linear time-invariant system of the input and m_t = sum_j H_j u_{t-j} with
the impulse response H_j = A_bar^j B_bar: :func:`causal_fft_conv` computes it for all frames at once with FFTs
(the parallel training path); :meth:`LMUBiLayer.forward` with ``parallel = False`` runs the same layer one frame at
a time (the step-by-step recurrence: the reference it equals, and the way to run it frame by frame). The hidden
state is a recurrence in either mode; it runs on a hand-written tanh RNN (:class:`TanhRNNFunction`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lstm_asr.nn.cells import reverse_padded


def legendre_system(order: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The continuous Legendre delay system m' = A m + B u (float64), the paper's A and B divided by ``theta``."""
    i = torch.arange(order, dtype=torch.float64).view(-1, 1)
    j = torch.arange(order, dtype=torch.float64).view(1, -1)
    sign = torch.where(i < j, -1.0, (-1.0) ** (i - j + 1))
    a = (2 * i + 1) * sign
    b = (2 * i[:, 0] + 1) * (-1.0) ** i[:, 0]
    return a / theta, b / theta


def zero_order_hold(a: torch.Tensor, b: torch.Tensor, dt: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Discretise m' = A m + B u for inputs held constant over each step of ``dt``: A_bar = exp(A dt),
    B_bar = A^-1 (A_bar - I) B (``scipy.signal.cont2discrete``'s "zoh"; A is invertible here)."""
    a_bar = torch.linalg.matrix_exp(a * dt)
    b_bar = torch.linalg.solve(a, (a_bar - torch.eye(a.shape[0], dtype=a.dtype)) @ b)
    return a_bar, b_bar


def impulse_response(a_bar: torch.Tensor, b_bar: torch.Tensor, steps: int) -> torch.Tensor:
    """(steps, d): row j is A_bar^j B_bar, by doubling (log2(steps) matrix products, not a loop over steps)."""
    rows, power = b_bar.unsqueeze(0), a_bar
    while rows.shape[0] < steps:
        rows = torch.cat([rows, rows @ power.T])  # rows j + n = A_bar^n (rows j)
        power = power @ power
    return rows[:steps]


def causal_fft_conv(u: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """m[..., t, :] = sum_{j <= t} response[j] u[..., t - j] for u (..., T) and response (T, d): (..., T, d).

    Both are zero-padded to an FFT size of at least 2T - 1, so the circular convolution is the linear one."""
    steps = u.shape[-1]
    n = 1 << (2 * steps - 2).bit_length()  # the power of two >= 2T - 1
    spectrum = torch.fft.rfft(u, n=n).unsqueeze(-1) * torch.fft.rfft(response, n=n, dim=0)
    return torch.fft.irfft(spectrum, n=n, dim=-2)[..., :steps, :]


class TanhRNNFunction(torch.autograd.Function):
    """h_t = tanh(gx_t + h_{t-1} W) for both directions at once, with a hand-written backward.

    ``gx`` (2, B, T, H): everything but the recurrent term, for every frame (one matrix multiply outside);
    ``w_hh_t`` (2, H, H) recurrent weights, transposed. Output h (2, B, T, H), zero initial state.
    """

    @staticmethod
    def forward(ctx, gx: torch.Tensor, w_hh_t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        dirs, batch, steps, hidden = gx.shape
        hs = gx.new_empty(steps, dirs, batch, hidden)  # time-major: each step writes a contiguous block
        h_prev = gx.new_zeros(dirs, batch, hidden)
        for t in range(steps):
            h_prev = torch.baddbmm(gx[:, :, t], h_prev, w_hh_t, out=hs[t])
            h_prev.mul_(2).sigmoid_().mul_(2).sub_(1)  # tanh as 2 sigmoid(2x) - 1 (faster on this CPU build)
        ctx.save_for_backward(w_hh_t, hs)
        return hs.permute(1, 2, 0, 3)

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):  # type: ignore[override]
        w_hh_t, hs = ctx.saved_tensors
        steps, dirs, batch, hidden = hs.shape
        slope = torch.addcmul(torch.ones_like(hs), hs, hs, value=-1)  # tanh' = 1 - h^2, all frames at once
        grad_tm = grad_h.permute(2, 0, 1, 3)  # (T, 2, B, H) view
        w_hh = w_hh_t.transpose(1, 2)
        d_pre = torch.empty_like(hs)
        dh = grad_tm[steps - 1].clone()
        for t in range(steps - 1, -1, -1):
            torch.mul(dh, slope[t], out=d_pre[t])
            if t > 0:
                dh = torch.baddbmm(grad_tm[t - 1], d_pre[t], w_hh)
        h_prev = torch.zeros_like(hs)
        h_prev[1:] = hs[:-1]
        grad_w = torch.bmm(h_prev.permute(1, 3, 0, 2).reshape(dirs, hidden, steps * batch),
                           d_pre.permute(1, 0, 2, 3).reshape(dirs, steps * batch, hidden))
        return d_pre.permute(1, 2, 0, 3), grad_w


class LMUBiLayer(nn.Module):
    """One bidirectional LMU layer (padding-safe: the backward direction reads per-sequence reversed inputs, the
    memory is causal, and padded frames feed the memory zeros).

    Parameters, direction-stacked: ``encoder`` (2, M, D), ``weight_x`` (2, H, D), ``weight_m`` (2, H, M d),
    ``weight_h`` (2, H, H), ``bias`` (2, H). ``parallel`` (default True) computes the memory by FFT convolution;
    False runs the step-by-step recurrence (same function, to rounding).
    """

    def __init__(self, input_dim: int, hidden: int, order: int = 32, theta: float = 50.0, memories: int = 8) -> None:
        super().__init__()
        self.hidden, self.order, self.theta, self.memories = hidden, order, theta, memories
        self.parallel = True
        a, b = legendre_system(order, theta)
        self.a_bar, self.b_bar = zero_order_hold(a, b)  # float64, fixed: cast where used
        self._response: dict[tuple, torch.Tensor] = {}  # impulse response by (dtype, device), grown as needed
        self.encoder = nn.Parameter(torch.empty(2, memories, input_dim))
        self.weight_x = nn.Parameter(torch.empty(2, hidden, input_dim))
        self.weight_m = nn.Parameter(torch.empty(2, hidden, memories * order))
        self.weight_h = nn.Parameter(torch.empty(2, hidden, hidden))
        self.bias = nn.Parameter(torch.empty(2, hidden))
        self.output_dim = 2 * hidden
        for p, fan_in in ((self.encoder, input_dim), (self.weight_x, input_dim + memories * order),
                          (self.weight_m, input_dim + memories * order), (self.weight_h, hidden),
                          (self.bias, hidden)):
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(p, -bound, bound)

    def response(self, steps: int, like: torch.Tensor) -> torch.Tensor:
        """The memory's impulse response for ``steps`` frames, (steps, d), in ``like``'s dtype and device (computed
        in float64, cached)."""
        key = (like.dtype, like.device)
        cached = self._response.get(key)
        if cached is None or cached.shape[0] < steps:
            full = impulse_response(self.a_bar, self.b_bar, max(steps, 2 * (0 if cached is None else cached.shape[0])))
            cached = self._response[key] = full.to(like.dtype).to(like.device)
        return cached[:steps]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        dtype = self.weight_h.dtype
        xs = torch.stack([x, reverse_padded(x, lengths)]).view(2, batch * steps, dim)
        # Padded frames feed the memory zeros: the FFT mixes all frames in rounding, so garbage there must be 0.
        real = (torch.arange(steps, device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1))
        u = torch.bmm(xs, self.encoder.transpose(1, 2)).view(2, batch, steps, self.memories)
        u = u.to(dtype) * real.view(1, batch, steps, 1).to(dtype)
        gx = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight_x.transpose(1, 2))  # (2, B T, H)
        # FFTs and the recurrences in the weights' dtype (under bf16 autocast the projections above are bf16).
        with torch.autocast(x.device.type, enabled=False):
            gx = gx.to(dtype)
            if self.parallel:
                hs = self._parallel(u, gx.view(2, batch, steps, self.hidden))
            else:
                hs = self._stepwise(u, gx.view(2, batch, steps, self.hidden))
        return torch.cat([hs[0], reverse_padded(hs[1], lengths)], dim=-1)

    def _parallel(self, u: torch.Tensor, gx: torch.Tensor) -> torch.Tensor:
        dirs, batch, steps, _ = u.shape
        # (2, B, M, T) signals convolved with the (T, d) response: (2, B, M, T, d) -> (2, B, T, M d).
        m = causal_fft_conv(u.permute(0, 1, 3, 2), self.response(steps, u))
        m = m.permute(0, 1, 3, 2, 4).reshape(dirs, batch * steps, self.memories * self.order)
        gx = torch.baddbmm(gx.view(dirs, batch * steps, self.hidden), m, self.weight_m.transpose(1, 2))
        return TanhRNNFunction.apply(gx.view(dirs, batch, steps, self.hidden), self.weight_h.transpose(1, 2))

    def _stepwise(self, u: torch.Tensor, gx: torch.Tensor) -> torch.Tensor:
        dirs, batch, steps, _ = u.shape
        a_bar_t = self.a_bar.T.to(u)
        b_bar = self.b_bar.to(u)
        w_m_t, w_h_t = self.weight_m.transpose(1, 2), self.weight_h.transpose(1, 2)
        m = u.new_zeros(dirs, batch, self.memories, self.order)
        h = u.new_zeros(dirs, batch, self.hidden)
        out = []
        for t in range(steps):
            m = torch.matmul(m, a_bar_t) + u[:, :, t].unsqueeze(-1) * b_bar
            pre = torch.baddbmm(gx[:, :, t], m.view(dirs, batch, -1), w_m_t)
            h = torch.tanh(torch.baddbmm(pre, h, w_h_t))
            out.append(h)
        return torch.stack(out, dim=2)
