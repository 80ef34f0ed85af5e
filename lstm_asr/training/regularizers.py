"""Training-time perturbations: Gaussian weight noise (Graves 2013) and SpecAugment-style masking.

Both draw from torch's default generator, which ``last.pt`` saves, so a resumed run draws the same noise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def weight_noise(model: torch.nn.Module, sigma: float) -> Iterator[None]:
    """Add N(0, sigma^2) noise to every weight for one forward/backward pass, then restore the clean weights.

    The gradient is taken at the noisy point and applied to the clean weights (Graves 2013, after Jim et al.):
    exit the context after ``backward()`` and before ``optimizer.step()``.
    """
    if sigma <= 0:
        yield
        return
    params = [p for p in model.parameters() if p.requires_grad]
    clean = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p), alpha=sigma)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, c in zip(params, clean, strict=True):
                p.copy_(c)


def spec_mask(feats: torch.Tensor, lengths: torch.Tensor, time_masks: int, time_width: int, freq_masks: int,
              freq_width: int) -> torch.Tensor:
    """Mask random time spans and feature bands of a padded (B, T, D) batch (Park et al. 2019), vectorised.

    The features are raw (the model normalises them), where zero is not neutral, so masked cells take the
    utterance's mean feature vector instead.
    """
    if time_masks <= 0 and freq_masks <= 0:
        return feats
    b, t, d = feats.shape
    keep = torch.ones(b, t, d, dtype=torch.bool)
    steps = torch.arange(t)
    dims = torch.arange(d)
    for _ in range(time_masks):
        width = torch.randint(0, time_width + 1, (b,))
        start = (torch.rand(b) * (lengths - width).clamp(min=1)).long()
        keep &= ~((steps >= start[:, None]) & (steps < (start + width)[:, None]))[:, :, None]
    for _ in range(freq_masks):
        width = torch.randint(0, freq_width + 1, (b,))
        start = (torch.rand(b) * (d - width).clamp(min=1)).long()
        keep &= ~((dims >= start[:, None]) & (dims < (start + width)[:, None]))[:, None, :]
    valid = (steps[None, :] < lengths[:, None])[:, :, None]
    keep |= ~valid  # padding stays as it is
    mean = (feats * valid).sum(1, keepdim=True) / lengths.clamp(min=1)[:, None, None]
    return torch.where(keep, feats, mean.expand_as(feats))
