"""Learning-rate schedules, applied once per epoch (their whole state is the current rate, kept in the loop state).

- ``constant``: the recipe's ``training.lr`` throughout.
- ``newbob``: multiply the rate by ``training.newbob_factor`` (0.5: halving) after every epoch whose dev error did
  not improve on the best so far -- the classic plateau rule of the hybrid-system era.
- ``cosine``: ``lr * (1 + cos(pi * e / E)) / 2`` for the e-th epoch (from 0) of E = ``training.max_epochs``.

``training.momentum_per: utterance`` (SGD with ``loss_reduction: sum``) makes a batch step stand for the per-utterance
steps of Graves' papers: per-utterance SGD with momentum mu and rate lr forgets a gradient by mu per utterance and
moves the weights by lr / (1 - mu) per unit of gradient in all. A batch of B utterances, summed, then steps with
momentum mu^B and rate lr (1 - mu^B) / (1 - mu) (:func:`utterance_paced`): the same total move per gradient, and the
same memory counted in utterances (with mu per batch, a gradient would keep pushing for ~B / (1 - mu) utterances).
On the demo corpus at the paper's rate it followed per-utterance SGD less closely than plain ``sum`` (its mean train
loss ran to hundreds or thousands of nats per utterance in the first epochs; bench/RESULTS.md, issue 11), so no
recipe uses it.
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


def utterance_paced(optimizer: torch.optim.Optimizer, lr: float, momentum: float, utterances: int) -> None:
    """Set SGD's momentum and rate for one step over the summed loss of ``utterances`` utterances so that it moves
    like that many per-utterance steps at (``lr``, ``momentum``) would, to first order."""
    mu = momentum**utterances
    for group in optimizer.param_groups:
        group["momentum"] = mu
        group["lr"] = lr * (1.0 - mu) / (1.0 - momentum) if momentum < 1.0 else lr * utterances
