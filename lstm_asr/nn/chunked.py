"""Latency-controlled recurrence (Chen & Huo 2016; Zhang et al. 2016; Xue & Yan 2017), vectorised for training.

A latency-controlled BLSTM cuts the input into chunks of ``N`` frames. The forward direction runs over the chunks
in order, its state carried from each chunk to the next, exactly as over the whole utterance. The backward
direction starts afresh (zero state) at the end of each chunk's *window*: the chunk plus ``R`` frames of
look-ahead (right context). As in Kaldi's BLSTM recipes and Zhang et al., the look-ahead frames pass through every
layer inside the window: each layer computes provisional outputs for them (forward direction continuing from the
state at the chunk's end, not carried on; backward direction from the window's end) that the next layer reads.
So a chunk's outputs are final once its ``R`` look-ahead frames have arrived at the input, whatever the depth.

Training runs this over whole utterances without a loop over chunks:

* the forward direction over the chunk frames is one ``nn.LSTM`` call over the whole utterance (its outputs at
  chunk frames are the final ones);
* the look-ahead frames of all windows are one batch of ``B * K`` sequences of ``R`` frames, started from the
  forward state at each chunk's end. ``nn.LSTM`` returns its cell state only at the last frame, so the cell states
  at chunk ends are recomputed from the outputs: the gates are one matrix multiply over all frames, and
  ``c_t = f_t c_{t-1} + i_t g_t`` is a linear recurrence, solved by a parallel prefix scan in log2(T) steps
  (:func:`lstm_cell_states`);
* the backward direction is one call over ``B * K`` windows of ``N + R`` frames, each reversed within its own
  valid length (the last windows of an utterance are cut at its end), so padding never reaches a real frame.

Streaming the same model chunk by chunk (:mod:`lstm_asr.nn.streaming`) carries the exact state instead, and gives
the same outputs to float tolerance (tests/test_streaming.py).
"""

from __future__ import annotations

import torch
from torch import nn


def prefix_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``y_t = a_t * y_{t-1} + b_t`` (``y_{-1} = 0``) along dim 1 of (B, T, H) tensors.

    Hillis-Steele scan: log2(T) rounds of whole-tensor operations, no loop over frames. Each ``y_t`` depends only
    on frames ``<= t`` by the same sequence of operations whatever ``T`` is, so padding after an utterance never
    changes its values.
    """
    steps = a.shape[1]
    shift = 1
    while shift < steps:
        b = torch.cat([b[:, :shift], torch.addcmul(b[:, shift:], a[:, shift:], b[:, :-shift])], dim=1)
        a = torch.cat([a[:, :shift], a[:, shift:] * a[:, :-shift]], dim=1)
        shift *= 2
    return b


def lstm_cell_states(lstm: nn.LSTM, x: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """Cell states ``c_t`` (B, T, H) of a one-layer unidirectional batch-first ``nn.LSTM`` run from a zero state
    over ``x`` (B, T, D), recomputed from its ``outputs`` (B, T, H or projection): the gates of every frame in
    one matrix multiply, then the cell recurrence by :func:`prefix_scan`. Differentiable like the LSTM itself."""
    h_prev = torch.cat([torch.zeros_like(outputs[:, :1]), outputs[:, :-1]], dim=1)
    if hasattr(lstm, "weight_ih_l0"):
        w_ih, w_hh, b_ih, b_hh = lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0
    else:  # an int8 (dynamically quantized) LSTM, decoding only: its weights dequantized
        w, b = lstm.get_weight(), lstm.get_bias()
        w_ih, w_hh = w["weight_ih_l0"].dequantize(), w["weight_hh_l0"].dequantize()
        b_ih, b_hh = b["bias_ih_l0"], b["bias_hh_l0"]
    gates = nn.functional.linear(x, w_ih, b_ih) + nn.functional.linear(h_prev, w_hh, b_hh)
    i, f, g, _ = gates.chunk(4, dim=-1)
    return prefix_scan(torch.sigmoid(f), torch.sigmoid(i) * torch.tanh(g))


def window_lengths(lengths: torch.Tensor, windows: int, chunk: int, span: int) -> torch.Tensor:
    """Valid frames of each utterance's windows: window ``k`` starts at frame ``k * chunk`` and is ``span`` long,
    cut at the utterance's end. (B,) lengths -> (B * windows,), utterance-major."""
    starts = torch.arange(windows, device=lengths.device) * chunk
    return (lengths.unsqueeze(1) - starts).clamp(0, span).reshape(-1)


def right_context_frames(x: torch.Tensor, windows: int, chunk: int, right: int) -> torch.Tensor:
    """The look-ahead frames of every window taken from a (B, T, D) sequence: (B, K, right, D), where window ``k``
    reads frames ``(k + 1) * chunk ...``; zeros past the end of ``x``."""
    batch, steps, dim = x.shape
    need = windows * chunk + right
    if need > steps:
        x = nn.functional.pad(x, (0, 0, 0, need - steps))
    idx = (torch.arange(windows, device=x.device).unsqueeze(1) + 1) * chunk + torch.arange(right, device=x.device)
    return x[:, idx.reshape(-1)].reshape(batch, windows, right, dim)


def chunk_windows(x: torch.Tensor, look_ahead: torch.Tensor, chunk: int) -> torch.Tensor:
    """Each window's frames: its chunk of ``x`` (B, T, D) followed by its look-ahead frames (B, K, R, D), as
    (B * K, chunk + R, D); zeros past the end of ``x``."""
    batch, steps, dim = x.shape
    windows = look_ahead.shape[1]
    if windows * chunk > steps:
        x = nn.functional.pad(x, (0, 0, 0, windows * chunk - steps))
    chunks = x[:, : windows * chunk].reshape(batch, windows, chunk, dim)
    return torch.cat([chunks, look_ahead], dim=2).reshape(batch * windows, chunk + look_ahead.shape[2], dim)


def mask_look_ahead(look_ahead: torch.Tensor, lengths: torch.Tensor, chunk: int) -> torch.Tensor:
    """Zero the look-ahead frames past each utterance's end ((B, K, R, D); window ``k`` reads from ``(k+1)*chunk``)
    -- as the streaming model, which never sees them, pads with zeros."""
    batch, windows, right, _ = look_ahead.shape
    device = look_ahead.device
    frame = (torch.arange(windows, device=device).unsqueeze(1) + 1) * chunk + torch.arange(right, device=device)
    keep = frame.unsqueeze(0) < lengths.to(device).view(batch, 1, 1)
    return look_ahead * keep.unsqueeze(-1).to(look_ahead.dtype)

