"""Whether this machine runs a model in a reduced number format: bf16/fp16 autocast and dynamic int8 quantization.

These run on kernels that exist only on some processors. On a CPU without AVX-512 BF16 (an AVX2-only AMD EPYC, say)
oneDNN has no bf16 LSTM primitive and ``nn.LSTM`` under bf16 autocast raises "could not create a primitive
descriptor" deep inside the first training step; int8 needs one of PyTorch's quantized engines (fbgemm/x86 need
AVX2). Torch's reported CPU capability is not enough to predict either (it says nothing of oneDNN's own dispatch,
which ``ONEDNN_MAX_CPU_ISA`` can lower), so the check is a probe: one forward and backward step of a copy of the
very model on a few frames, in the chosen format. A failure becomes a one-line :class:`LstmAsrError` that says why
and what to use instead, before any training step or decoded file.
"""

from __future__ import annotations

import copy
import warnings
from functools import lru_cache

import torch
from torch import nn

from lstm_asr.errors import LstmAsrError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PROBE_FRAMES = 12  # before frame-rate reduction: enough for stacking x3 and subsampling x3 to leave frames


def _first_line(exc: BaseException) -> str:
    """The kernel's own reason, short: its first sentence (oneDNN adds advice on ONEDNN_VERBOSE after it)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).split(". ")[0].rstrip(".")


def run_autocast_probe(model: nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """One training step's forward and backward of a copy of ``model`` under autocast (raises what the kernels
    raise). The copy keeps ``model``'s weights and gradients untouched."""
    probe = copy.deepcopy(model).to(device).train()
    frames = PROBE_FRAMES * probe.frame_reduction
    x = torch.randn(1, frames, probe.config.input_dim, device=device)
    lengths = torch.tensor([frames])
    with torch.autocast(device_type=device.type, dtype=dtype):
        loss = probe.encode(x, lengths).float().sum()
        predictor = getattr(probe, "predictor", None)
        if predictor is not None:  # a transducer's prediction network has an LSTM of its own
            loss = loss + predictor(torch.zeros(1, 2, dtype=torch.long, device=device))[0].float().sum()
    loss.backward()


def autocast_problem(model: nn.Module, precision: str, device: torch.device) -> str | None:
    """Why ``model`` cannot train in ``precision`` (``bf16``/``fp16`` autocast) on ``device``, or None when it can."""
    dtype = AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return None
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return f"GPU {torch.cuda.get_device_name(device)} has no bf16 support"
    try:
        run_autocast_probe(model, device, dtype)
    except RuntimeError as exc:
        return _first_line(exc)
    return None


def check_precision(model: nn.Module, precision: str, device: torch.device) -> None:
    """Stop with a one-line error when ``model`` cannot run in ``precision`` here (see :func:`autocast_problem`)."""
    problem = autocast_problem(model, precision, device)
    if problem is not None:
        where = "this CPU" if device.type == "cpu" else f"this GPU ({device})"
        cell = getattr(getattr(model, "config", None), "cell", "this")
        instead = "training.precision=fp32" + (" or fp16" if device.type == "cuda" and precision == "bf16" else "")
        raise LstmAsrError(f"training.precision: {precision} does not run on {where} for the {cell} cell "
                           f"({problem}); use {instead}")


def run_int8_probe() -> None:
    """Dynamic int8 quantization of a tiny bidirectional LSTM and linear layer, and one forward pass."""
    from torch.ao.quantization import quantize_dynamic

    tiny = nn.Sequential(nn.Linear(4, 4))
    lstm = nn.LSTM(4, 4, batch_first=True, bidirectional=True)
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        q_lstm = quantize_dynamic(lstm, {nn.LSTM}, dtype=torch.qint8)
        q_tiny = quantize_dynamic(tiny, {nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        q_tiny(q_lstm(torch.randn(1, 3, 4))[0][..., :4])


@lru_cache(maxsize=1)
def int8_problem() -> str | None:
    """Why this CPU cannot run dynamic int8 quantization (no quantized engine, or its kernels fail), or None."""
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if not engines:
        return "this torch build has no quantized engine"
    try:
        run_int8_probe()
    except (RuntimeError, AssertionError) as exc:
        return f"{torch.backends.quantized.engine}: {_first_line(exc)}"
    return None


def check_int8() -> None:
    """Stop with a one-line error when int8 quantization cannot run here."""
    problem = int8_problem()
    if problem is not None:
        raise LstmAsrError(f"--quantize int8 does not run on this CPU ({problem}); decode in float32 "
                           "(leave --quantize out)")
