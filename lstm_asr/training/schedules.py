"""Learning-rate schedules, applied once per epoch (their whole state is the current rate, kept in the loop state).

- ``constant``: the recipe's ``training.lr`` throughout.
- ``newbob``: multiply the rate by ``training.newbob_factor`` (0.5: halving) after every epoch whose dev error did
  not improve on the best so far -- the classic plateau rule of the hybrid-system era.
- ``cosine``: ``lr * (1 + cos(pi * e / E)) / 2`` for the e-th epoch (from 0) of E = ``training.max_epochs``.
"""

from __future__ import annotations

import math

import torch


def next_lr(schedule: str, lr: float, base_lr: float, epochs_done: int, max_epochs: int, improved: bool,
            factor: float) -> float:
    """The learning rate for the next epoch, given how the epoch just finished went."""
    if schedule == "newbob":
        return lr if improved else lr * factor
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(epochs_done, max_epochs) / max_epochs))
    return lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
