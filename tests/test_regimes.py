"""Graves 2013 regime pieces: learning-rate schedules, Gaussian weight noise, SpecAugment-style masking."""

from __future__ import annotations

import math

import torch

from lstm_asr.training.regularizers import spec_mask, weight_noise
from lstm_asr.training.schedules import next_lr, utterance_paced


def test_newbob_halves_only_on_plateau_and_cosine_anneals() -> None:
    assert next_lr("newbob", 0.4, 1.0, 3, 10, improved=True, factor=0.5) == 0.4
    assert next_lr("newbob", 0.4, 1.0, 3, 10, improved=False, factor=0.5) == 0.2
    assert next_lr("constant", 0.4, 1.0, 3, 10, improved=False, factor=0.5) == 0.4
    rates = [next_lr("cosine", 0.0, 1.0, e, 10, True, 0.5) for e in range(11)]
    assert rates[0] == 1.0 and abs(rates[5] - 0.5) < 1e-12 and rates[10] < 1e-12
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))


def test_weight_noise_perturbs_the_pass_and_restores_clean_weights() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    clean = [p.detach().clone() for p in layer.parameters()]
    x = torch.randn(5, 4)
    y_clean = layer(x)
    with weight_noise(layer, 0.5):
        y_noisy = layer(x)
        y_noisy.sum().backward()
        grad = layer.weight.grad.clone()
    assert not torch.allclose(y_noisy, y_clean)
    assert all(torch.equal(p, c) for p, c in zip(layer.parameters(), clean, strict=True))
    layer.weight.grad = None
    layer(x).sum().backward()
    assert torch.allclose(grad, layer.weight.grad)  # linear: d/dW of sum(Wx+b) does not depend on W
    with weight_noise(layer, 0.0):
        assert torch.equal(layer(x), y_clean)


def test_spec_mask_masks_spans_inside_each_utterance() -> None:
    torch.manual_seed(0)
    feats = torch.randn(3, 50, 10) + 5.0
    lengths = torch.tensor([50, 30, 12])
    masked = spec_mask(feats, lengths, time_masks=2, time_width=8, freq_masks=1, freq_width=4)
    changed = masked != feats
    assert changed.any()
    assert not changed[1, 30:].any() and not changed[2, 12:].any()  # padding untouched
    for b, n in enumerate(lengths.tolist()):  # masked cells take the utterance mean
        mean = feats[b, :n].mean(0)
        assert torch.allclose(masked[b][changed[b]], mean.expand(50, 10)[changed[b]])
    assert torch.equal(spec_mask(feats, lengths, 0, 8, 0, 4), feats)
    assert not math.isnan(masked.sum().item())


def test_utterance_paced_batches_move_like_per_utterance_sgd_with_momentum() -> None:
    """With a constant gradient (a linear loss), per-utterance SGD with momentum settles at lr / (1 - mu) per
    utterance; batches of B summed utterances with utterance_paced settle at the same move per utterance, and their
    momentum forgets a gradient by mu per utterance (mu^B per batch)."""
    lr, mu, batch, g = 1e-2, 0.9, 8, torch.tensor([1.0, -2.0])

    def moves(step_utterances: int, steps: int) -> torch.Tensor:
        w = torch.zeros(2, requires_grad=True)
        opt = torch.optim.SGD([w], lr=lr, momentum=mu)
        out = []
        for _ in range(steps):
            before = w.detach().clone()
            opt.zero_grad()
            (step_utterances * (g * w).sum()).backward()  # the summed loss of the step's utterances
            if step_utterances > 1:
                utterance_paced(opt, lr, mu, step_utterances)
            opt.step()
            out.append((w.detach() - before) / step_utterances)
        return torch.stack(out)

    per_utterance, paced = moves(1, 800), moves(batch, 100)
    torch.testing.assert_close(per_utterance[-1], -lr * g / (1 - mu))
    torch.testing.assert_close(paced[-1], per_utterance[-1])
    group = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=mu)
    utterance_paced(group, lr, mu, batch)
    assert group.param_groups[0]["momentum"] == mu**batch
    assert math.isclose(group.param_groups[0]["lr"], lr * (1 - mu**batch) / (1 - mu))
