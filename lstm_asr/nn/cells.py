"""Recurrent cells for the bidirectional layers: nn.LSTM (optionally projected), nn.GRU, and a peephole LSTM.

Every layer here is bidirectional and padding-safe the same way: the backward direction runs over *per-sequence
reversed* inputs (``reverse_padded``), so padding stays at the end of every sequence and never reaches the state of
a real frame. A padded batch gives each utterance exactly what it gets alone.

The peephole LSTM (Gers & Schmidhuber 2000; the cell of Graves et al. 2013) has no PyTorch kernel. A cell written
as a Python loop of autograd ops, TorchScript or torch.compile runs 15-18x slower than nn.LSTM on CPU, so
:class:`PeepholeLSTMFunction` does the work by hand:

* the input projection of every frame of both directions is one batched matrix multiply, outside the recurrence;
* both directions run in one recurrence: forward and reversed-backward sequences are stacked on a leading direction
  axis of size 2 and each step multiplies by direction-specific weights with one ``baddbmm``;
* the backward pass is hand-written: the per-step derivative factors that do not depend on the incoming gradient
  are computed for all frames at once before the loop, the loop over time does a handful of batched tensor ops per
  step, and the weight gradients are one matrix multiply each after it.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from lstm_asr.nn.chunked import chunk_windows, lstm_cell_states, window_lengths
from lstm_asr.nn.direction_threads import can_run_concurrently, run_directions


class BiLayer(Protocol):
    """What the model needs of a bidirectional layer, whatever its cell: padded (B, T, D) inputs and their
    lengths in, (B, T, output_dim) out, each utterance's outputs independent of the padding and of the other
    utterances in the batch (tests/test_cells.py checks every cell for this)."""

    output_dim: int

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor: ...


def reversal_rows(lengths: torch.Tensor, batch: int, time: int, device: torch.device) -> torch.Tensor:
    """Row index (B*T,) into a (B*T, ...) view of a padded batch that reverses each sequence within its length.

    Row ``b*T + t`` takes row ``b*T + L_b - 1 - t`` for ``t < L_b`` and itself for padding. The permutation is its
    own inverse.
    """
    t = torch.arange(time, device=device).unsqueeze(0)
    lens = lengths.to(device).unsqueeze(1)
    idx = torch.where(t < lens, lens - 1 - t, t)
    return (idx + torch.arange(batch, device=device).unsqueeze(1) * time).reshape(-1)


class _PermuteRows(torch.autograd.Function):
    """``x.index_select(0, rows)`` for a permutation that is its own inverse: the gradient takes the same rows.

    Autograd's own backward for a gather or index_select is a zero fill plus a scatter-add; the inverse
    permutation is one more row gather (whole rows, no per-element index), the same copy as the forward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(rows)
        return x.index_select(0, rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        return _PermuteRows.apply(grad, rows), None


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of a batch-first padded tensor within its own length.

    ``x`` is (B, T, ...); frame ``t < L_b`` of sequence ``b`` moves to ``L_b - 1 - t``; padding frames stay where
    they are. The same call undoes it. One row gather over a (B*T, ...) view, no loop over sequences or frames, and
    its gradient is the same reversal of the incoming gradient.
    """
    batch, time = x.shape[0], x.shape[1]
    rows = reversal_rows(lengths, batch, time, x.device)
    return _PermuteRows.apply(x.reshape(batch * time, *x.shape[2:]), rows).view(x.shape)


class _JoinDirections(torch.autograd.Function):
    """``cat([fwd, reverse_padded(bwd)], -1)`` in one pass: the backward direction's outputs, computed on reversed
    sequences, are put back in time order straight into their half of the layer's output (no reversed copy in
    between), and the gradient of that half is gathered back in reversed order (no zero fill and scatter-add)."""

    @staticmethod
    def forward(ctx, fwd: torch.Tensor, bwd: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        batch, time, width_f = fwd.shape
        out = fwd.new_empty(batch, time, width_f + bwd.shape[-1])
        out[..., :width_f] = fwd
        torch.index_select(bwd.reshape(batch * time, -1), 0, rows, out=out.view(batch * time, -1)[:, width_f:])
        ctx.save_for_backward(rows)
        ctx.width_f = width_f
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (rows,) = ctx.saved_tensors
        batch, time, width = grad.shape
        w = ctx.width_f
        grad_b = _PermuteRows.apply(grad.reshape(batch * time, width)[:, w:], rows).view(batch, time, width - w)
        return grad[..., :w], grad_b, None


def join_directions(fwd: torch.Tensor, bwd_reversed: torch.Tensor, lengths: torch.Tensor,
                    rows: torch.Tensor | None = None) -> torch.Tensor:
    """A bidirectional layer's output (B, T, Hf + Hb): the forward direction's outputs beside the backward
    direction's, which were computed on per-sequence reversed inputs and are reversed back here. ``rows``:
    :func:`reversal_rows` for these lengths, when the caller has it already."""
    batch, time = fwd.shape[0], fwd.shape[1]
    if rows is None:
        rows = reversal_rows(lengths, batch, time, fwd.device)
    return _JoinDirections.apply(fwd, bwd_reversed, rows)


class BiRNNLayer(nn.Module):
    """One layer of nn.LSTM (``proj_size`` for LSTMP) or nn.GRU, one module per direction.

    ``bidirectional=False`` keeps the forward direction only (a unidirectional stack, for the lowest latency).
    :meth:`chunked` runs the layer latency-controlled (:mod:`lstm_asr.nn.chunked`).
    """

    def __init__(self, input_dim: int, hidden: int, cell: str = "lstm", projection: int = 0,
                 bidirectional: bool = True) -> None:
        super().__init__()
        self.cell = cell
        self.bidirectional = bidirectional
        if cell == "gru":
            self.fwd: nn.Module = nn.GRU(input_dim, hidden, batch_first=True)
            if bidirectional:
                self.bwd: nn.Module = nn.GRU(input_dim, hidden, batch_first=True)
        else:
            self.fwd = nn.LSTM(input_dim, hidden, batch_first=True, proj_size=projection)
            if bidirectional:
                self.bwd = nn.LSTM(input_dim, hidden, batch_first=True, proj_size=projection)
        self.output_dim = (2 if bidirectional else 1) * (projection or hidden)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.bidirectional:
            return self.fwd(x)[0]
        batch, time = x.shape[0], x.shape[1]
        rows = reversal_rows(lengths, batch, time, x.device)  # one index for both reversals of the layer
        x_rev = _PermuteRows.apply(x.reshape(batch * time, -1), rows).view(x.shape)
        # Both directions at once, one core each, when that pays (lstm_asr/nn/direction_threads.py).
        if can_run_concurrently(x, self.fwd.hidden_size):
            out_f, out_b = run_directions(self.fwd, self.bwd, x, x_rev)
        else:
            out_f, out_b = self.fwd(x)[0], self.bwd(x_rev)[0]
        return join_directions(out_f, out_b, lengths, rows)

    def chunked(self, x: torch.Tensor, look_ahead: torch.Tensor, lengths: torch.Tensor, chunk: int,
                need_look_ahead: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Latency-controlled pass (bidirectional layers): ``x`` (B, T, D) the chunk frames, ``look_ahead``
        (B, K, R, D) each window's look-ahead frames (K = ceil(T / chunk)). Returns the outputs at the chunk frames
        (B, T, output_dim) and, when ``need_look_ahead`` (not for the top layer), the provisional outputs at the
        look-ahead frames (B, K, R, output_dim) for the next layer. No loop over chunks or frames."""
        batch, steps, dim = x.shape
        windows, right = look_ahead.shape[1], look_ahead.shape[2]
        out_f, _ = self.fwd(x)
        width = out_f.shape[-1]
        la_f = out_f.new_zeros(batch, windows, right, width)
        if need_look_ahead and right > 0:
            # The forward direction continues into each window's look-ahead from the state at its chunk's end.
            ends = ((torch.arange(windows, device=x.device) + 1) * chunk - 1).clamp_max(steps - 1)
            h0 = out_f[:, ends].reshape(1, batch * windows, width)
            flat = look_ahead.reshape(batch * windows, right, dim)
            if self.cell == "gru":
                la_f, _ = self.fwd(flat, h0.contiguous())
            else:
                c0 = lstm_cell_states(self.fwd, x, out_f)[:, ends].reshape(1, batch * windows, -1)
                la_f, _ = self.fwd(flat, (h0.contiguous(), c0.contiguous()))
            la_f = la_f.reshape(batch, windows, right, width)
        # The backward direction starts afresh at the end of every window (cut at the utterance's end).
        span = chunk + right
        wlen = window_lengths(lengths, windows, chunk, span)
        out_b, _ = self.bwd(reverse_padded(chunk_windows(x, look_ahead, chunk), wlen))
        out_b = reverse_padded(out_b, wlen).reshape(batch, windows, span, width)
        y = torch.cat([out_f, out_b[:, :, :chunk].reshape(batch, windows * chunk, width)[:, :steps]], dim=-1)
        return y, torch.cat([la_f, out_b[:, :, chunk:]], dim=-1)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """In-place tanh as 2 sigmoid(2x) - 1: on this CPU build torch.tanh is ~9x slower than torch.sigmoid."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


class PeepholeLSTMFunction(torch.autograd.Function):
    """Recurrence of a two-direction peephole LSTM with a hand-written backward.

    Inputs: ``gx`` (2, B, T, 4H) input projections plus biases, direction- and batch-major (the layout the input
    projection's batched matrix multiply produces, so no copy is made), gates ordered i, f, g, o; ``w_hh_t``
    (2, H, 4H) recurrent weights, transposed; ``peep`` (2, 3, H) peephole weights for i, f (on c_{t-1}) and o (on
    c_t); ``identity`` whether h_t = o_t * c_t instead of o_t * tanh(c_t). Output: h (2, B, T, H). Zero initial
    state. Per-step work tensors are time-major, so each step reads and writes contiguous blocks.
    """

    @staticmethod
    def forward(ctx, gx: torch.Tensor, w_hh_t: torch.Tensor, peep: torch.Tensor,  # type: ignore[override]
                identity: bool) -> torch.Tensor:
        dirs, batch, steps, four_h = gx.shape
        hidden = four_h // 4
        # Activated gates per step: i, f, sigmoid(2 z_g) (tanh(z_g) = 2 sigmoid(2 z_g) - 1, see _tanh_), o.
        acts = gx.new_empty(steps, dirs, batch, four_h)
        cs = gx.new_zeros(steps + 1, dirs, batch, hidden)  # cs[t + 1] = c_t; cs[0] = c_0 = 0
        hs = gx.new_empty(dirs, batch, steps, hidden)
        act_c = cs[1:] if identity else gx.new_empty(steps, dirs, batch, hidden)  # tanh(c_t) or c_t
        peep_if = peep[:, :2].unsqueeze(1)  # (2, 1, 2, H), broadcast over the batch
        peep_o = peep[:, 2].unsqueeze(1)  # (2, 1, H)
        h_prev = gx.new_zeros(dirs, batch, hidden)
        for t in range(steps):
            gates = acts[t]
            torch.baddbmm(gx[:, :, t], h_prev, w_hh_t, out=gates)
            g4 = gates.view(dirs, batch, 4, hidden)
            c_prev, c = cs[t], cs[t + 1]
            g4[:, :, :2].addcmul_(peep_if, c_prev.unsqueeze(2))
            g4[:, :, 2].mul_(2)
            g4[:, :, :3].sigmoid_()  # one call for i, f and the g gate's sigmoid(2 z_g)
            i, s_g = g4[:, :, 0], g4[:, :, 2]
            torch.mul(g4[:, :, 1], c_prev, out=c)
            c.addcmul_(i, s_g, value=2).sub_(i)  # + i * tanh(z_g) = i * (2 s_g - 1)
            o = g4[:, :, 3].addcmul_(peep_o, c).sigmoid_()
            if not identity:
                torch.mul(c, 2, out=act_c[t]).sigmoid_().mul_(2).sub_(1)
            h_prev = torch.mul(o, act_c[t], out=hs[:, :, t])
        ctx.save_for_backward(w_hh_t, peep, acts, cs, hs, act_c)
        ctx.identity = identity
        return hs

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor):  # type: ignore[override]
        w_hh_t, peep, acts, cs, hs, act_c = ctx.saved_tensors
        steps, dirs, batch, four_h = acts.shape
        hidden = four_h // 4
        a4 = acts.view(steps, dirs, batch, 4, hidden)
        i, f, s_g, o = a4.unbind(3)
        g = s_g * 2 - 1  # tanh(z_g)
        c_prev_all = cs[:-1]
        # Factors that do not depend on the incoming gradient, for every frame at once (big vectorised ops):
        # d pre_i = dc * g * i(1-i); d pre_f = dc * c_{t-1} * f(1-f); d pre_g = dc * i * (1-g^2);
        # d pre_o = dh * act(c) * o(1-o); dc gets dh * o * act'(c) from h.
        fac = torch.empty_like(acts).view(steps, dirs, batch, 4, hidden)
        torch.mul(g, torch.addcmul(i, i, i, value=-1), out=fac[:, :, :, 0])
        torch.mul(c_prev_all, torch.addcmul(f, f, f, value=-1), out=fac[:, :, :, 1])
        torch.mul(i, torch.addcmul(torch.ones_like(g), g, g, value=-1), out=fac[:, :, :, 2])
        torch.mul(act_c, torch.addcmul(o, o, o, value=-1), out=fac[:, :, :, 3])
        dc_from_h = o if ctx.identity else o * torch.addcmul(torch.ones_like(o), act_c, act_c, value=-1)
        del i, g, s_g, o
        peep_if = peep[:, :2].unsqueeze(1)
        peep_o = peep[:, 2].unsqueeze(1)
        w_hh = w_hh_t.transpose(1, 2)  # (2, 4H, H)
        # Gradients of the gates' pre-activations, in gx's layout (2, B, T, 4H): returned without a copy.
        d_gates = acts.new_empty(dirs, batch, steps, four_h)
        dh = grad_h[:, :, steps - 1].clone()
        dc = torch.zeros_like(dh)
        for t in range(steps - 1, -1, -1):
            dg4 = d_gates[:, :, t].view(dirs, batch, 4, hidden)
            d_o = torch.mul(dh, fac[t, :, :, 3], out=dg4[:, :, 3])
            dc.addcmul_(dh, dc_from_h[t]).addcmul_(d_o, peep_o)
            d_if_g = torch.mul(fac[t, :, :, :3], dc.unsqueeze(2), out=dg4[:, :, :3])
            # dc_{t-1} = dc * f + d pre_i * w_ci + d pre_f * w_cf
            dc = (dc * f[t]).addcmul_(d_if_g[:, :, 0], peep_if[:, :, 0]).addcmul_(d_if_g[:, :, 1], peep_if[:, :, 1])
            if t > 0:
                dh = torch.baddbmm(grad_h[:, :, t - 1], d_gates[:, :, t], w_hh)
        # Weight gradients: one matrix multiply over all frames each (h_{t-1} in the same (2, B, T) order).
        flat_dg = d_gates.view(dirs, batch * steps, four_h)
        h_prev = hs.new_zeros(dirs, batch, steps, hidden)
        h_prev[:, :, 1:] = hs[:, :, :-1]
        grad_w_hh_t = torch.bmm(h_prev.view(dirs, batch * steps, hidden).transpose(1, 2), flat_dg)
        dgv = d_gates.view(dirs, batch, steps, 4, hidden)
        c_prev_bm = c_prev_all.permute(1, 2, 0, 3)  # (2, B, T, H) views of the time-major cell states
        grad_peep = torch.stack([
            (dgv[:, :, :, 0] * c_prev_bm).sum((1, 2)),
            (dgv[:, :, :, 1] * c_prev_bm).sum((1, 2)),
            (dgv[:, :, :, 3] * cs[1:].permute(1, 2, 0, 3)).sum((1, 2)),
        ], dim=1)
        return d_gates, grad_w_hh_t, grad_peep, None


class PeepholeBiLSTMLayer(nn.Module):
    """One bidirectional peephole LSTM layer (both directions in one recurrence, hand-written backward).

    ``output_activation`` is ``"tanh"`` (h = o * tanh(c), Gers & Schmidhuber) or ``"identity"`` (h = o * c).
    """

    def __init__(self, input_dim: int, hidden: int, output_activation: str = "tanh") -> None:
        super().__init__()
        self.hidden = hidden
        self.identity = output_activation == "identity"
        self.weight_ih = nn.Parameter(torch.empty(2, 4 * hidden, input_dim))
        self.weight_hh = nn.Parameter(torch.empty(2, 4 * hidden, hidden))
        self.bias = nn.Parameter(torch.empty(2, 4 * hidden))
        self.peephole = nn.Parameter(torch.empty(2, 3, hidden))
        self.output_dim = 2 * hidden
        bound = 1.0 / math.sqrt(hidden)  # nn.LSTM's default initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        # Direction-stacked inputs (2, B, T, D): the backward direction sees reversed sequences. The input
        # projection of every frame of both directions is one batched matrix multiply.
        xs = torch.stack([x, reverse_padded(x, lengths)]).view(2, batch * steps, dim)
        gx = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight_ih.transpose(1, 2))
        # The hand-written recurrence runs in the weights' dtype: under bf16/fp16 autocast (training.precision) the
        # projection above is half precision, and the recurrence's in-place updates need a single dtype.
        with torch.autocast(x.device.type, enabled=False):
            hs = PeepholeLSTMFunction.apply(gx.to(self.weight_hh.dtype).view(2, batch, steps, 4 * self.hidden),
                                            self.weight_hh.transpose(1, 2), self.peephole, self.identity)  # (2,B,T,H)
        return join_directions(hs[0], hs[1], lengths)
