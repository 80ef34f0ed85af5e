"""Frame-rate reduction inside the network: input frame stacking with subsampling, and pyramidal halving.

Sak et al. (2015) stack 3 consecutive 10 ms frames and keep every third stack, so the recurrent layers run at a
30 ms rate: three times fewer steps for the same audio. A pyramidal network (Chan et al. 2016) also halves the
rate between layers by concatenating neighbouring frame pairs. Both live in the model (``ModelConfig``), so
checkpoints and decoding carry them; :meth:`lstm_asr.nn.model.BLSTMCTC.output_lengths` maps input lengths to output
lengths and :func:`reduction` gives the frame-time scale for token times.

Both are padding-safe: frames at or beyond an utterance's length are zeroed before they are stacked, so an
utterance gets the same outputs in a padded batch as alone (where the missing frames are zero padding too).
"""

from __future__ import annotations

import torch


def reduced_length(lengths: torch.Tensor, factor: int) -> torch.Tensor:
    """Frames left after keeping every ``factor``-th frame (ceil: a partial last window still gives a frame)."""
    return torch.div(lengths + factor - 1, factor, rounding_mode="floor")


def mask_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero every frame at or beyond its sequence's length in a (B, T, D) batch."""
    keep = torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lengths.to(x.device).unsqueeze(1)
    return x * keep.unsqueeze(-1).to(x.dtype)


def stack_frames(x: torch.Tensor, lengths: torch.Tensor, stack: int, subsample: int) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """Stack ``stack`` consecutive frames at every ``subsample``-th frame: (B, T, D) -> (B, ceil(T/s), stack*D).

    Output frame ``k`` is frames ``k*subsample .. k*subsample + stack - 1`` side by side, zeros past the end.
    Returns the stacked batch and the new lengths. One strided slice per stacked frame, no loop over frames.
    """
    if stack == 1 and subsample == 1:
        return x, lengths
    steps = x.shape[1]
    out_steps = (steps + subsample - 1) // subsample  # not -(-a // b): ONNX export divides ints truncating
    need = (out_steps - 1) * subsample + stack
    x = mask_padding(x, lengths)
    if need > steps or torch.jit.is_tracing():  # a trace (ONNX export) keeps the pad for every length: need - steps
        x = torch.nn.functional.pad(x, (0, 0, 0, need - steps))  # is then 0, or negative (cropping unused frames)
    # Frame j of every window is a strided slice (data movement only, and ONNX exports it at any length, which
    # it does not for unfold).
    parts = [x[:, j: j + (out_steps - 1) * subsample + 1: subsample] for j in range(stack)]
    return torch.cat(parts, dim=-1), reduced_length(lengths, subsample)
