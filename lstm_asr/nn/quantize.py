"""int8 models for CPUs that serve many streams: PyTorch's dynamic quantization of the recurrent and linear layers.

Weights are stored as int8 and activations quantized on the fly, per batch (``torch.ao.quantization.quantize_dynamic``).
Used by ``lstm-asr export --quantize int8`` and ``lstm-asr decode --quantize int8``; ``bench/bench_streaming.py``
measures its speed and error rate against float32.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.kernel_support import check_int8
from lstm_asr.nn.model import BLSTMCTC

QUANTIZE = ("", "int8")


def quantized(model: BLSTMCTC, quantize: str) -> BLSTMCTC:
    """A copy of ``model`` with PyTorch's dynamic int8 quantization of its nn.LSTM (without projection), nn.GRU and
    nn.Linear layers (``quantize="int8"``); ``model`` itself when ``quantize`` is empty."""
    if quantize not in QUANTIZE:
        raise LstmAsrError(f"unknown --quantize {quantize!r} (use int8)")
    if not quantize:
        return model
    check_int8()  # a one-line error on a CPU without a working quantized engine
    from torch.ao.quantization import quantize_dynamic

    targets = {name for name, m in model.named_modules()
               if isinstance(m, nn.GRU | nn.Linear) or (isinstance(m, nn.LSTM) and not m.proj_size)}
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model).eval(), targets, dtype=torch.qint8)


