"""Checkpoints: written atomically, loaded with ``weights_only`` (a crafted pickle cannot run code).

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts::

    format        "lstm-asr/1"
    model_config  ModelConfig fields
    features      FeatureConfig fields
    tokens        output symbols, blank first
    corpus_type   e.g. "timit" (decides scoring conventions)
    state_dict    the model's weights, normalisation statistics included
    ...           training state (optimiser, epoch, RNG) in last.pt

It is written to a temporary file in the same folder, flushed to disk, then renamed over the target: a crash
leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from lstm_asr.atomic_file import write_atomically
from lstm_asr.errors import LstmAsrError, reporting_write_errors

FORMAT = "lstm-asr/1"
AVERAGED = "averaged.pt"  # an experiment's averaged weights (lstm_asr/training/averaging.py), beside best.pt


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Atomically write ``obj`` (with the format tag added) to ``path``.

    A failed write (disk full, no permission, read-only file system) is a one-line LstmAsrError naming ``path``;
    the temporary file is removed and the previous checkpoint at ``path``, if any, is left as it was.
    """
    path = Path(path)
    with reporting_write_errors(path, "the checkpoint"):
        write_atomically(path, lambda f: torch.save({"format": FORMAT, **obj}, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely; anything that is not an lstm-asr checkpoint is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise LstmAsrError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise LstmAsrError(f"{path}: refused to load: not a plain-weights checkpoint ({first[:120]})") from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise LstmAsrError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise LstmAsrError(f"{path}: not an lstm-asr checkpoint (expected format {FORMAT})")
    return obj
