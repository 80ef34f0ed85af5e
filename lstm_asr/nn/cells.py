"""Recurrent cells for the bidirectional layers: nn.LSTM (optionally projected), nn.GRU, and the peephole LSTM family:
the peephole LSTM, Greff et al. (2017)'s eight variants of it and the 1997 LSTM, on one hand-written recurrence.

Every layer here is bidirectional and padding-safe the same way: the backward direction runs over *per-sequence
reversed* inputs (``reverse_padded``), so padding stays at the end of every sequence and never reaches the state of
a real frame. A padded batch gives each utterance exactly what it gets alone.

The peephole LSTM (Gers & Schmidhuber 2000; the cell of Graves et al. 2013) has no PyTorch kernel. A cell written
as a Python loop of autograd ops, TorchScript or torch.compile runs 15-18x slower than nn.LSTM on CPU, so
:class:`GatedLSTMFunction` does the work by hand, for whichever parts a variant has (:class:`GateSpec`):

* the input projection of every frame of both directions is one batched matrix multiply, outside the recurrence;
* both directions run in one recurrence: forward and reversed-backward sequences are stacked on a leading direction
  axis of size 2 and each step multiplies by direction-specific weights with one ``baddbmm``;
* the backward pass is hand-written: the per-step derivative factors that do not depend on the incoming gradient
  are computed for all frames at once before the loop, the loop over time does a handful of batched tensor ops per
  step, and the weight gradients are one matrix multiply each after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

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


class GateLayout(NamedTuple):
    """Where a :class:`GateSpec`'s blocks lie in a (..., blocks * hidden) projection, and the switches the recurrence
    branches on: :meth:`GateSpec.layout` derives them once per call, and the recurrence unpacks them into locals."""

    blocks: int
    hidden: int
    gi: int | None  # block index of i, f, g, o (None: the variant has no such gate)
    gf: int | None
    gg: int
    go: int | None
    tanh_g: bool  # input activation
    tanh_c: bool  # output activation
    coupled: bool  # f = 1 - i
    fgr: bool  # full gate recurrence


@dataclass(frozen=True)
class GateSpec:
    """Which parts of the peephole LSTM a layer has. Greff et al. ("LSTM: A Search Space Odyssey", 2017) ablate
    the vanilla peephole LSTM one part at a time; each of their variants is one field changed here (:data:`VARIANTS`).

    The equations (vanilla: every field at its default), with c_0 = h_0 = 0::

        i = sigmoid(z_i + p_i * c_{t-1})        input gate      (input_gate=False: i = 1)
        f = sigmoid(z_f + p_f * c_{t-1})        forget gate     (forget_gate "none": f = 1; "coupled": f = 1 - i)
        g = tanh(z_g)                           block input     (input_activation=False: g = z_g)
        c = f * c_{t-1} + i * g
        o = sigmoid(z_o + p_o * c_t)            output gate     (output_gate=False: o = 1)
        h = o * tanh(c)                         block output    (output_activation=False: h = o * c)

    where z = W x_t + R h_{t-1} + b; ``peepholes=False`` drops the p terms; ``gate_recurrence`` (FGR) adds to z_i,
    z_f and z_o the previous step's gate activations times a (3H x 3H) matrix.
    """

    input_gate: bool = True
    forget_gate: str = "gate"  # "gate", "none" (f = 1: the cell only accumulates) or "coupled" (f = 1 - i)
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    peepholes: bool = True
    gate_recurrence: bool = False

    def __post_init__(self) -> None:
        if self.forget_gate not in ("gate", "none", "coupled"):
            raise ValueError(f"forget_gate {self.forget_gate!r} is not one of gate, none, coupled")
        if self.forget_gate == "coupled" and not self.input_gate:
            raise ValueError("a coupled forget gate (f = 1 - i) needs the input gate")
        if self.gate_recurrence and not (self.input_gate and self.forget_gate == "gate" and self.output_gate):
            raise ValueError("full gate recurrence needs all three gates")

    @property
    def gates(self) -> tuple[str, ...]:
        """The blocks of the input projection, in order: i, f, g, o without the absent ones. With gate recurrence
        the order is i, f, o, g, so that the gate activations fed back are one contiguous block."""
        if self.gate_recurrence:
            return ("i", "f", "o", "g")
        present = (("i", self.input_gate), ("f", self.forget_gate == "gate"), ("g", True), ("o", self.output_gate))
        return tuple(name for name, on in present if on)

    @property
    def peephole_gates(self) -> tuple[str, ...]:
        """The gates with a peephole, in the order of the peephole weights' rows: i, f (on c_{t-1}), o (on c_t)."""
        return tuple(g for g in ("i", "f", "o") if g in self.gates) if self.peepholes else ()

    def layout(self, width: int) -> GateLayout:
        """The :class:`GateLayout` of a projection ``width`` = len(gates) * hidden wide."""
        blocks = len(self.gates)
        pos = {name: k for k, name in enumerate(self.gates)}
        return GateLayout(blocks, width // blocks, pos.get("i"), pos.get("f"), pos["g"], pos.get("o"),
                          self.input_activation, self.output_activation, self.forget_gate == "coupled",
                          self.gate_recurrence)


# Greff et al.'s variants, and the 1997 LSTM (Hochreiter & Schmidhuber: input and output gates, no forget gate, no
# peepholes). Its activations, 4 sigmoid(x) - 2 on the block input and 2 sigmoid(x) - 1 = tanh(x / 2) on the cell,
# are tanh up to a rescaling of the input weights (c' = c / 2 with z' = z / 2 gives the same h), so tanh is used;
# the 1997 paper's truncated gradient is not (full backpropagation through time, as Greff et al. trained it).
VARIANTS: dict[str, GateSpec] = {
    "peephole": GateSpec(),
    "nig": GateSpec(input_gate=False),
    "nfg": GateSpec(forget_gate="none"),
    "nog": GateSpec(output_gate=False),
    "niaf": GateSpec(input_activation=False),
    "noaf": GateSpec(output_activation=False),
    "np": GateSpec(peepholes=False),
    "cifg": GateSpec(forget_gate="coupled"),
    "fgr": GateSpec(gate_recurrence=True),
    "lstm1997": GateSpec(forget_gate="none", peepholes=False),
}


def variant_spec(cell: str, output_activation: str = "tanh") -> GateSpec:
    """The :class:`GateSpec` of a peephole-family cell name; ``output_activation: identity`` removes the output
    activation of any of them (``peephole`` with identity is ``noaf``: one implementation, two names)."""
    spec = VARIANTS[cell]
    return replace(spec, output_activation=False) if output_activation == "identity" else spec


class GatedLSTMFunction(torch.autograd.Function):
    """Recurrence of a two-direction peephole-family LSTM (:class:`GateSpec`) with a hand-written backward.

    Inputs: ``gx`` (2, B, T, nH) input projections plus biases, direction- and batch-major (the layout the input
    projection's batched matrix multiply produces, so no copy is made), the n = len(spec.gates) blocks in
    ``spec.gates`` order; ``w_hh_t`` (2, H, nH) recurrent weights, transposed; ``peep`` (2, P, H) peephole weights in
    ``spec.peephole_gates`` order (None without peepholes); ``w_gg_t`` (2, 3H, 3H) gate-to-gate weights, transposed
    (full gate recurrence only, else None); ``h0``, ``c0`` (2, B, H) initial states (None: zeros). Outputs: h
    (2, B, T, H) and the cell states (T + 1, 2, B, H), time-major, c_0 first; the cell states carry no gradient
    (they are for a caller that continues the recurrence, e.g. a chunked or streaming mode).

    Per-step work tensors are time-major, so each step reads and writes contiguous blocks. Before the backward loop,
    the per-step derivative factors that do not depend on the incoming gradient are computed for all frames at once;
    the loop does a handful of batched tensor ops per step; the weight gradients are one matrix multiply each.
    """

    @staticmethod
    def forward(ctx, gx: torch.Tensor, w_hh_t: torch.Tensor, peep: torch.Tensor | None,  # type: ignore[override]
                w_gg_t: torch.Tensor | None, h0: torch.Tensor | None, c0: torch.Tensor | None,
                spec: GateSpec) -> tuple[torch.Tensor, torch.Tensor]:
        dirs, batch, steps, width = gx.shape
        blocks, hidden, gi, gf, gg, go, tanh_g, tanh_c, coupled, fgr = spec.layout(width)
        # Activated blocks per step: i, f, o, and for g sigmoid(2 z_g) (tanh(z_g) = 2 sigmoid(2 z_g) - 1, see
        # _tanh_) or z_g itself without the input activation.
        acts = gx.new_empty(steps, dirs, batch, width)
        cs = gx.new_empty(steps + 1, dirs, batch, hidden)  # cs[t + 1] = c_t
        cs[0] = 0 if c0 is None else c0
        hs = gx.new_empty(dirs, batch, steps, hidden)
        act_c = gx.new_empty(steps, dirs, batch, hidden) if tanh_c else cs[1:]  # tanh(c_t) or c_t
        # i and f come first in every order: their peepholes (on c_{t-1}) are rows 0 .. n_pre-1, the o one after.
        n_pre = sum(g in spec.peephole_gates for g in "if")
        peep_pre = peep[:, :n_pre].unsqueeze(1) if n_pre else None  # (2, 1, n_pre, H), broadcast over the batch
        peep_o = peep[:, n_pre].unsqueeze(1) if "o" in spec.peephole_gates else None  # (2, 1, H)
        # Blocks activated by one sigmoid call before c_t: i, f and g's sigmoid(2 z_g), contiguous unless FGR.
        pre_sigmoid = gg + 1 if tanh_g else gg
        h_prev = gx.new_zeros(dirs, batch, hidden) if h0 is None else h0
        for t in range(steps):
            gates = acts[t]
            torch.baddbmm(gx[:, :, t], h_prev, w_hh_t, out=gates)
            if fgr and t > 0:
                gates[:, :, : 3 * hidden].baddbmm_(acts[t - 1, :, :, : 3 * hidden], w_gg_t)
            g4 = gates.view(dirs, batch, blocks, hidden)
            c_prev, c = cs[t], cs[t + 1]
            if peep_pre is not None:
                g4[:, :, :n_pre].addcmul_(peep_pre, c_prev.unsqueeze(2))
            if tanh_g:
                g4[:, :, gg].mul_(2)
            if fgr:  # order i, f, o, g
                g4[:, :, :2].sigmoid_()
                if tanh_g:
                    g4[:, :, gg].sigmoid_()
            elif pre_sigmoid:
                g4[:, :, :pre_sigmoid].sigmoid_()  # one call for i, f and the g gate's sigmoid(2 z_g)
            i, s_g = (g4[:, :, gi] if gi is not None else None), g4[:, :, gg]
            if coupled:  # f = 1 - i: c = c_{t-1} + i * (g - c_{t-1})
                g_val = s_g * 2 - 1 if tanh_g else s_g
                torch.addcmul(c_prev, i, g_val - c_prev, out=c)
            else:
                if gf is not None:
                    torch.mul(g4[:, :, gf], c_prev, out=c)
                else:
                    c.copy_(c_prev)
                if i is not None and tanh_g:
                    c.addcmul_(i, s_g, value=2).sub_(i)  # + i * tanh(z_g) = i * (2 s_g - 1)
                elif i is not None:
                    c.addcmul_(i, s_g)
                elif tanh_g:
                    c.add_(s_g, alpha=2).sub_(1)
                else:
                    c.add_(s_g)
            if tanh_c:
                torch.mul(c, 2, out=act_c[t]).sigmoid_().mul_(2).sub_(1)
            if go is not None:
                o = g4[:, :, go]
                if peep_o is not None:
                    o.addcmul_(peep_o, c)
                o.sigmoid_()
                h_prev = torch.mul(o, act_c[t], out=hs[:, :, t])
            else:
                h_prev = hs[:, :, t]
                h_prev.copy_(act_c[t])
        ctx.save_for_backward(w_hh_t, peep, w_gg_t, h0, acts, cs, hs, act_c)
        ctx.spec = spec
        ctx.mark_non_differentiable(cs)
        return hs, cs

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor, grad_cs: torch.Tensor | None):  # type: ignore[override]
        w_hh_t, peep, w_gg_t, h0, acts, cs, hs, act_c = ctx.saved_tensors
        spec: GateSpec = ctx.spec
        steps, dirs, batch, width = acts.shape
        blocks, hidden, gi, gf, gg, go, tanh_g, tanh_c, coupled, fgr = spec.layout(width)
        a4 = acts.view(steps, dirs, batch, blocks, hidden)
        i = a4[:, :, :, gi] if gi is not None else None
        f = a4[:, :, :, gf] if gf is not None else None
        o = a4[:, :, :, go] if go is not None else None
        g = a4[:, :, :, gg] * 2 - 1 if tanh_g else a4[:, :, :, gg]  # tanh(z_g), or z_g
        c_prev_all = cs[:-1]
        # Factors that do not depend on the incoming gradient, for every frame at once (big vectorised ops):
        # d pre_i = dc * g * i(1-i) (coupled: dc * (g - c_{t-1}) * i(1-i)); d pre_f = dc * c_{t-1} * f(1-f);
        # d pre_g = dc * i * (1-g^2); d pre_o = dh * act(c) * o(1-o); dc gets dh * o * act'(c) from h.
        fac = torch.empty_like(acts).view(steps, dirs, batch, blocks, hidden)
        sig_d = {}  # sigmoid derivatives of the gates, kept for FGR's gate-to-gate gradients
        if i is not None:
            sig_d["i"] = torch.addcmul(i, i, i, value=-1)
            torch.mul(g - c_prev_all if coupled else g, sig_d["i"], out=fac[:, :, :, gi])
        if f is not None:
            sig_d["f"] = torch.addcmul(f, f, f, value=-1)
            torch.mul(c_prev_all, sig_d["f"], out=fac[:, :, :, gf])
        if tanh_g:
            g_slope = torch.addcmul(torch.ones_like(g), g, g, value=-1)
            if i is not None:
                torch.mul(i, g_slope, out=fac[:, :, :, gg])
            else:
                fac[:, :, :, gg] = g_slope
        else:
            fac[:, :, :, gg] = 1 if i is None else i
        if o is not None:
            sig_d["o"] = torch.addcmul(o, o, o, value=-1)
            torch.mul(act_c, sig_d["o"], out=fac[:, :, :, go])
        if tanh_c:
            c_slope = torch.addcmul(torch.ones_like(act_c), act_c, act_c, value=-1)
            dc_from_h = c_slope if o is None else o * c_slope
        else:
            dc_from_h = o  # None: h = c, dc gets dh itself
        f_mult = f if f is not None else (1 - i if coupled else None)  # dc_{t-1} = dc_t * f + ...
        if fgr:
            sig_ifo = torch.stack([sig_d["i"], sig_d["f"], sig_d["o"]], dim=3)  # (T, 2, B, 3, H)
        del g
        n_pre = sum(gate in spec.peephole_gates for gate in "if")
        peep_i = peep[:, 0].unsqueeze(1) if "i" in spec.peephole_gates else None
        peep_f = peep[:, n_pre - 1].unsqueeze(1) if "f" in spec.peephole_gates else None
        peep_o = peep[:, n_pre].unsqueeze(1) if "o" in spec.peephole_gates else None
        w_hh = w_hh_t.transpose(1, 2)  # (2, nH, H)
        w_gg = w_gg_t.transpose(1, 2) if fgr else None
        # The blocks whose gradient is dc times their factor: all but o; contiguous (o is last) unless FGR.
        dc_blocks = blocks - 1 if go is not None else blocks
        # Gradients of the blocks' pre-activations, in gx's layout (2, B, T, nH): returned without a copy.
        d_gates = acts.new_empty(dirs, batch, steps, width)
        dh = grad_h[:, :, steps - 1].clone()
        dc = torch.zeros_like(dh)
        d_ifo = None  # FGR: gradient w.r.t. the i, f, o activations of step t, from step t + 1
        for t in range(steps - 1, -1, -1):
            dg4 = d_gates[:, :, t].view(dirs, batch, blocks, hidden)
            if o is not None:
                d_o = torch.mul(dh, fac[t, :, :, go], out=dg4[:, :, go])
                if d_ifo is not None:
                    d_o.addcmul_(d_ifo[:, :, 2], sig_ifo[t, :, :, 2])
            if dc_from_h is None:
                dc.add_(dh)
            else:
                dc.addcmul_(dh, dc_from_h[t])
            if peep_o is not None:
                dc.addcmul_(d_o, peep_o)
            if fgr:  # order i, f, o, g
                torch.mul(fac[t, :, :, :2], dc.unsqueeze(2), out=dg4[:, :, :2])
                torch.mul(fac[t, :, :, gg], dc, out=dg4[:, :, gg])
                if d_ifo is not None:
                    dg4[:, :, :2].addcmul_(d_ifo[:, :, :2], sig_ifo[t, :, :, :2])
            else:
                torch.mul(fac[t, :, :, :dc_blocks], dc.unsqueeze(2), out=dg4[:, :, :dc_blocks])
            # dc_{t-1} = dc * f + d pre_i * p_i + d pre_f * p_f
            dc = dc * f_mult[t] if f_mult is not None else dc
            if peep_i is not None:
                dc.addcmul_(dg4[:, :, gi], peep_i)
            if peep_f is not None:
                dc.addcmul_(dg4[:, :, gf], peep_f)
            if t > 0:
                dh = torch.baddbmm(grad_h[:, :, t - 1], d_gates[:, :, t], w_hh)
                if fgr:
                    d_ifo = torch.bmm(d_gates[:, :, t, : 3 * hidden], w_gg).view(dirs, batch, 3, hidden)
        need = ctx.needs_input_grad
        grad_h0 = torch.bmm(d_gates[:, :, 0], w_hh) if need[4] else None
        grad_c0 = dc if need[5] else None
        # Weight gradients: one matrix multiply over all frames each (h_{t-1} in the same (2, B, T) order).
        flat_dg = d_gates.view(dirs, batch * steps, width)
        h_prev = hs.new_empty(dirs, batch, steps, hidden)
        h_prev[:, :, 1:] = hs[:, :, :-1]
        h_prev[:, :, 0] = 0 if h0 is None else h0
        grad_w_hh_t = torch.bmm(h_prev.view(dirs, batch * steps, hidden).transpose(1, 2), flat_dg)
        grad_w_gg_t = None
        if fgr:
            a_prev = acts.new_zeros(dirs, batch, steps, 3 * hidden)
            a_prev[:, :, 1:] = acts[:-1, :, :, : 3 * hidden].permute(1, 2, 0, 3)
            grad_w_gg_t = torch.bmm(a_prev.view(dirs, batch * steps, 3 * hidden).transpose(1, 2),
                                    flat_dg[:, :, : 3 * hidden])
        grad_peep = None
        if peep is not None:
            dgv = d_gates.view(dirs, batch, steps, blocks, hidden)
            c_prev_bm = c_prev_all.permute(1, 2, 0, 3)  # (2, B, T, H) views of the time-major cell states
            c_bm = cs[1:].permute(1, 2, 0, 3)
            block = {"i": gi, "f": gf, "o": go}
            rows = [(dgv[:, :, :, block[gate]] * (c_bm if gate == "o" else c_prev_bm)).sum((1, 2))
                    for gate in spec.peephole_gates]
            grad_peep = torch.stack(rows, dim=1)
        return d_gates, grad_w_hh_t, grad_peep, grad_w_gg_t, grad_h0, grad_c0, None


def gated_bidirectional(x: torch.Tensor, lengths: torch.Tensor, weight_ih: torch.Tensor, weight_hh: torch.Tensor,
                        bias: torch.Tensor, peephole: torch.Tensor | None, gate_weight: torch.Tensor | None,
                        spec: GateSpec) -> torch.Tensor:
    """Both directions of a peephole-family layer over a padded batch (B, T, D): (B, T, 2H), padding-safe.

    Weights are direction-stacked: ``weight_ih`` (2, nH, D), ``weight_hh`` (2, nH, H), ``bias`` (2, nH),
    ``peephole`` (2, P, H), ``gate_weight`` (2, 3H, 3H) (FGR). Any layer whose weights can be written this way
    runs on the hand-written recurrence (the ConvLSTM builds them from its kernels).
    """
    batch, steps, dim = x.shape
    # Direction-stacked inputs (2, B, T, D): the backward direction sees reversed sequences. The input projection of
    # every frame of both directions is one batched matrix multiply.
    xs = torch.stack([x, reverse_padded(x, lengths)]).view(2, batch * steps, dim)
    gx = torch.baddbmm(bias.unsqueeze(1), xs, weight_ih.transpose(1, 2))
    # The hand-written recurrence runs in the weights' dtype: under bf16/fp16 autocast (training.precision) the
    # projection above is half precision, and the recurrence's in-place updates need a single dtype.
    with torch.autocast(x.device.type, enabled=False):
        hs, _ = GatedLSTMFunction.apply(
            gx.to(weight_hh.dtype).view(2, batch, steps, weight_ih.shape[1]), weight_hh.transpose(1, 2), peephole,
            None if gate_weight is None else gate_weight.transpose(1, 2), None, None, spec)  # (2, B, T, H)
    return join_directions(hs[0], hs[1], lengths)


class PeepholeBiLSTMLayer(nn.Module):
    """One bidirectional peephole-family LSTM layer (both directions in one recurrence, hand-written backward).

    ``spec`` chooses the variant (:data:`VARIANTS`; default: Gers & Schmidhuber's peephole LSTM, the vanilla LSTM of
    Greff et al.). ``output_activation`` ``"identity"`` (h = o * c) removes the output activation (NOAF).
    Parameters: ``weight_ih`` (2, nH, D), ``weight_hh`` (2, nH, H), ``bias`` (2, nH) for the n blocks of
    ``spec.gates``, ``peephole`` (2, P, H) when the variant has peepholes, ``gate_weight`` (2, 3H, 3H) with full
    gate recurrence (the vanilla layer keeps the names and shapes of earlier checkpoints).
    """

    def __init__(self, input_dim: int, hidden: int, output_activation: str = "tanh",
                 spec: GateSpec | None = None) -> None:
        super().__init__()
        spec = spec or GateSpec()
        if output_activation == "identity":
            spec = replace(spec, output_activation=False)
        self.spec = spec
        self.hidden = hidden
        self.identity = not spec.output_activation
        blocks = len(spec.gates)
        self.weight_ih = nn.Parameter(torch.empty(2, blocks * hidden, input_dim))
        self.weight_hh = nn.Parameter(torch.empty(2, blocks * hidden, hidden))
        self.bias = nn.Parameter(torch.empty(2, blocks * hidden))
        self.peephole = nn.Parameter(torch.empty(2, len(spec.peephole_gates), hidden)) if spec.peepholes else None
        self.gate_weight = (nn.Parameter(torch.empty(2, 3 * hidden, 3 * hidden)) if spec.gate_recurrence else None)
        self.output_dim = 2 * hidden
        bound = 1.0 / math.sqrt(hidden)  # nn.LSTM's default initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return gated_bidirectional(x, lengths, self.weight_ih, self.weight_hh, self.bias, self.peephole,
                                   self.gate_weight, self.spec)
