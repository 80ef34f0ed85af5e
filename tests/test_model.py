"""The BLSTM-CTC network: padding never leaks, per-sequence reversal, CTC helpers, initialisation."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_padding_safe

from lstm_asr.data.ctc_feasibility import ctc_min_frames
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.cells import join_directions, reverse_padded
from lstm_asr.nn.model import BLSTMCTC, ModelConfig


def test_reverse_padded_reverses_within_length_and_is_its_own_inverse() -> None:
    x = torch.arange(2 * 5, dtype=torch.float32).view(2, 5, 1)
    lengths = torch.tensor([5, 3])
    r = reverse_padded(x, lengths)
    assert r[0, :, 0].tolist() == [4, 3, 2, 1, 0]
    assert r[1, :, 0].tolist() == [7, 6, 5, 8, 9]  # padding frames (8, 9) stay put
    assert torch.equal(reverse_padded(r, lengths), x)


def test_reversal_and_joining_have_exact_gradients() -> None:
    # The reversal's and the join's hand-written backwards against autograd's own gather/cat, exactly.
    torch.manual_seed(0)
    lengths = torch.tensor([6, 2, 4])
    x = torch.randn(3, 6, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 6, 5, dtype=torch.float64, requires_grad=True)
    t = torch.arange(6).unsqueeze(0)
    idx = torch.where(t < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - t, t)

    def reference(z: torch.Tensor) -> torch.Tensor:
        return torch.gather(z, 1, idx.unsqueeze(-1).expand_as(z))

    up = torch.randn(3, 6, 9, dtype=torch.float64)
    ours = torch.autograd.grad((join_directions(x, b, lengths) * up).sum(), (x, b))
    ref = torch.autograd.grad((torch.cat([x, reference(b)], -1) * up).sum(), (x, b))
    assert all(torch.equal(o, r) for o, r in zip(ours, ref, strict=True))
    assert torch.equal(join_directions(x, b, lengths), torch.cat([x, reference(b)], -1))
    assert torch.equal(torch.autograd.grad((reverse_padded(x, lengths) * up[..., :4]).sum(), x)[0],
                       reference(up[..., :4]))
    assert torch.autograd.gradgradcheck(lambda z: reverse_padded(z, lengths), (x,))


def test_padded_batch_gives_each_utterance_its_own_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    assert_padding_safe(BLSTMCTC(ModelConfig(input_dim=7, num_classes=5, hidden=6, layers=3)).double())


def test_output_shape_and_log_softmax() -> None:
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=61, hidden=16, layers=2))
    out = model(torch.randn(2, 11, 123), torch.tensor([11, 8]))
    assert out.shape == (2, 11, 61)
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(2, 11))


def test_graves_uniform_init_and_parameter_count() -> None:
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=62, hidden=250, layers=3, init="uniform",
                                 init_scale=0.1))
    assert all(p.abs().max() <= 0.1 for p in model.parameters())
    # Graves et al. 2013 quote 3.8M weights for CTC-3L-250H; PyTorch keeps two bias vectors per gate (+0.05M).
    assert 3.7e6 < model.num_parameters() < 3.9e6


def test_bad_model_config_is_a_clear_error() -> None:
    with pytest.raises(LstmAsrError, match="model.init"):
        ModelConfig(input_dim=3, num_classes=4, init="xavier")
    with pytest.raises(LstmAsrError, match="dropout"):
        ModelConfig(input_dim=3, num_classes=4, dropout=1.5)


def test_ctc_min_frames_counts_repeats() -> None:
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8
    assert ctc_min_frames([]) == 0


def test_dropout_is_inverted_seeded_and_off_in_evaluation() -> None:
    from lstm_asr.nn.dropout import Dropout

    drop, p = Dropout(0.2), 0.2
    x = torch.rand(4, 250, 100) + 0.5  # no zeros of its own
    x.requires_grad_(True)
    torch.manual_seed(3)
    y = drop(x)
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)  # the mask comes from torch's generator: seeded runs repeat exactly
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / (1 - p))
    n = kept.numel()
    assert abs((~kept).sum().item() - p * n) < 6 * (n * p * (1 - p)) ** 0.5  # Bernoulli(p) drops
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, kept.float() / (1 - p))
    assert not torch.equal(drop(x), y)  # a fresh mask per call
    drop.eval()
    assert drop(x) is x


def test_directions_run_concurrently_give_the_same_outputs_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    # The two-worker path (lstm_asr/nn/direction_threads.py) against the directions run one after the other, forced
    # on whatever the thread count here; padding-safe like every cell.
    import lstm_asr.nn.cells as cells
    from lstm_asr.nn import direction_threads
    from lstm_asr.nn.model import ctc_loss

    if direction_threads._worker_pool() is None:
        pytest.skip("no OpenMP runtime found to give the direction workers one thread each")
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=7, num_classes=5, hidden=6, layers=3)).double()
    x, lengths = torch.randn(3, 9, 7, dtype=torch.float64), torch.tensor([9, 5, 4])
    targets, target_lengths = torch.tensor([1, 2, 3, 2, 4, 1, 1, 3]), torch.tensor([3, 2, 3])
    runs = []
    for concurrent in (True, False):
        monkeypatch.setattr(cells, "can_run_concurrently", lambda _x, _h, c=concurrent: c)
        model.zero_grad()
        out = model(x, lengths)
        ctc_loss(out, lengths, targets, target_lengths).backward()
        runs.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
        with torch.inference_mode():
            assert torch.equal(model(x, lengths), out.detach())
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    monkeypatch.setattr(cells, "can_run_concurrently", lambda _x, _h: True)
    assert_padding_safe(model)
