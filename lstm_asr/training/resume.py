"""Exact resume: the training loop's position and random states, saved in ``last.pt`` and restored from it.

One mechanism serves interrupted runs (``--resume``) and crashes (SIGKILL at any moment): ``last.pt`` is written
atomically every ``training.checkpoint_every`` batches and at each epoch end, and holds everything the loop's future
depends on -- weights, optimiser, the loop state below (which includes the learning rate the schedule set and the
sampler position: batches are a pure function of (seed, epoch), so the index of the next batch is enough) and the
random generators (dropout, weight noise, masking). A resumed run therefore takes exactly the steps an uninterrupted
one would have taken, and on CPU ends with bit-identical weights.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from lstm_asr.errors import LstmAsrError


@dataclass
class LoopState:
    """Where training stands. ``epoch``/``step`` are the position of the next batch to train on."""

    lr: float
    stage: int = 1  # 1 = training, 2 = retraining from best.pt with Gaussian weight noise (Graves 2013)
    stage_start: int = 1  # first epoch of the current stage (stages count their epochs separately)
    epoch: int = 1
    step: int = 0  # batches of ``epoch`` already applied: the sampler position
    best_per: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs without a better dev error (early stopping, newbob)
    skipped_steps: int = 0  # steps dropped for a non-finite loss or gradient, whole run
    bad_streak: int = 0  # consecutive such steps
    epoch_loss: float = 0.0  # sums over the epoch so far, so a resumed epoch reports the same mean loss
    epoch_utts: int = 0
    epoch_frames: int = 0
    elapsed: float = 0.0  # training seconds before this process started (the wall-clock budget spans resumes)
    done: bool = False  # training finished; only the final scoring is left
    # What ran before the first batch (transducer: encoder copied from a CTC experiment, prediction network LM);
    # a resumed run finds it here and does not run it again.
    pretraining: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rng_states() -> dict[str, Any]:
    """The generators that training draws from, as checkpoint-safe values (tensors, ints, lists)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate((states["python_version"], tuple(states["python"]), states["python_gauss"]))
    np.random.set_state(("MT19937", states["numpy"].numpy().astype(np.uint32), states["numpy_pos"], 0, 0.0))
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): data}


# Keys that change how a run is watched or how long it may go on, not what it computes: resuming with another
# value is normal (more minutes for a run that hit its budget, fewer threads on a busier machine).
RUNTIME_KEYS = frozenset({"training.threads", "training.max_minutes", "training.log_every", "training.tensorboard",
                          "training.device"})


def recipe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two recipe dicts, :data:`RUNTIME_KEYS` aside.

    A key missing from ``old`` (a checkpoint written before the key existed) counts as differing only when ``new``
    sets it to something other than its default.
    """
    from lstm_asr.recipe import Recipe

    a, b = _flatten(old), _flatten(new)
    defaults = _flatten(Recipe().to_dict())
    absent = object()
    diff = []
    for k in a.keys() | b.keys():
        if k in RUNTIME_KEYS:
            continue
        va, vb = a.get(k, absent), b.get(k, absent)
        if va is absent and vb == defaults.get(k, absent):
            continue
        if va != vb:
            diff.append(k)
    return sorted(diff)


def model_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Model-config fields that differ; a field the checkpoint predates (e.g. ``head``) counts only when the new
    config sets it to something other than its default."""
    from lstm_asr.nn.model import ModelConfig

    defaults = {f.name: f.default for f in fields(ModelConfig)}
    absent = object()
    return sorted(k for k in old.keys() | new.keys()
                  if old.get(k, defaults.get(k, absent)) != new.get(k, defaults.get(k, absent)))


def check_resumable(ckpt: dict[str, Any], recipe: dict[str, Any], model_config: dict[str, Any], path: Any,
                    force: bool) -> None:
    """Refuse a checkpoint of another model always, and of a changed recipe unless ``force``: one-line errors."""
    if "loop" not in ckpt or "optimizer" not in ckpt:
        raise LstmAsrError(f"{path}: cannot resume: the checkpoint holds no training state")
    keys = model_differences(ckpt.get("model_config") or {}, model_config)
    if keys:
        raise LstmAsrError(f"{path}: checkpoint is from another model (differs in {', '.join(keys)})")
    diff = recipe_differences(ckpt.get("recipe") or {}, recipe)
    if diff and not force:
        raise LstmAsrError(f"{path}: the recipe differs from the checkpoint's in {', '.join(diff)} "
                           "(use --force to resume anyway)")
