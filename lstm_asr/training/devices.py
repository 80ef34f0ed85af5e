"""Where training runs and in which number format: ``training.device`` and ``training.precision``.

* ``device``: ``auto`` (CUDA when there is a usable GPU, else CPU), ``cpu`` or ``cuda``. Under torchrun each process
  takes the GPU of its ``LOCAL_RANK``. On CUDA, the layers' ``nn.LSTM``/``nn.GRU`` run cuDNN's fused kernels with no
  change to the model: the per-sequence reversal of the backward direction is one gather on the same device.
* ``precision``: ``fp32``; ``bf16`` (autocast: matmuls and recurrences in bfloat16, weights and optimiser in
  float32; CPU and CUDA); ``fp16`` (autocast in float16 with a ``GradScaler``: float16 gradients underflow without
  loss scaling; CUDA only, a clear error elsewhere rather than a silent fallback). The CTC loss is always computed
  in float32 (``lstm_asr.nn.model.ctc_loss`` casts the log-probabilities), since its recursions underflow in half
  precision.

Checkpoints hold whatever device the weights were on and are always loaded with ``map_location="cpu"``
(``lstm_asr/nn/checkpoint.py``), so a model trained on a GPU decodes on a CPU-only machine.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from lstm_asr.errors import LstmAsrError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_device_count() -> int:
    """GPUs torch can use here (0 when the build or the driver has no CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def select_device(name: str, local_rank: int = 0, gpus: int | None = None) -> torch.device:
    """The device of ``training.device`` for the process of ``local_rank`` on its node.

    ``gpus`` is the number of usable GPUs (default: what torch sees); ``auto`` picks CUDA when there is one.
    """
    if name not in DEVICES:
        raise LstmAsrError(f"training.device: {name!r} is not one of {', '.join(DEVICES)}")
    gpus = cuda_device_count() if gpus is None else gpus
    if name == "cpu" or (name == "auto" and gpus == 0):
        return torch.device("cpu")
    if gpus == 0:
        raise LstmAsrError("training.device: cuda was asked for but torch sees no usable GPU here "
                           "(use training.device=auto or cpu)")
    if local_rank >= gpus:
        raise LstmAsrError(f"training.device: process {local_rank} on this node has no GPU of its own (the node has "
                           f"{gpus}): start at most {gpus} processes per node (torchrun --nproc-per-node)")
    return torch.device("cuda", local_rank)


class MixedPrecision:
    """Autocast and, for fp16, gradient scaling, for one training run on ``device``.

    The loop calls ``autocast()`` around the forward pass and loss, then ``backward(loss)``, ``unscale_(optimizer)``
    before clipping (the clip threshold is in true gradient units), and ``step(optimizer)`` or, for a dropped
    step, ``skip()``. With fp32 each of these is the plain operation (or nothing).
    """

    def __init__(self, precision: str, device: torch.device) -> None:
        if precision not in PRECISIONS:
            raise LstmAsrError(f"training.precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
        if precision == "fp16" and device.type != "cuda":
            raise LstmAsrError(f"training.precision: fp16 needs a CUDA device, but training runs on {device.type} "
                               "(use bf16 or fp32 there)")
        self.precision = precision
        self.device = device
        self.dtype = _DTYPES.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self._unscaled = False  # unscale_ ran this step: a skipped step must still update the scaler

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for the forward pass and the loss (nothing for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
            self._unscaled = True

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
            self._unscaled = False
        else:
            optimizer.step()

    def skip(self) -> bool:
        """A step is dropped for a non-finite gradient. True when that is an fp16 overflow: the scaler then halves
        its scale, which is routine (the first steps probe the largest safe scale), not a numerical fault."""
        if self.scaler is not None and self._unscaled:
            self.scaler.update()
            self._unscaled = False
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        """The loss scale and its schedule (empty without fp16): saved in ``last.pt`` for exact resume."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
