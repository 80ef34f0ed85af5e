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

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import LstmAsrError

FORMAT = "lstm-asr/1"


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Atomically write ``obj`` (with the format tag added) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **obj}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise LstmAsrError(f"{path}: cannot write checkpoint ({exc.strerror or exc})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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
