"""The Legendre Memory Unit: the paper's A and B and their zero-order hold, the FFT memory against the step-by-step
recurrence (to 1e-5 in float32), the parallel layer against the stepped one, gradcheck."""

from __future__ import annotations

import math

import pytest
import torch

from lstm_asr.nn.lmu import (
    LMUBiLayer,
    TanhRNNFunction,
    causal_fft_conv,
    impulse_response,
    legendre_system,
    zero_order_hold,
)


def test_legendre_system_is_the_papers() -> None:
    a, b = legendre_system(4, theta=2.0)
    # Voelker et al. 2019, eq. 2, for d = 4, divided by theta.
    want_a = torch.tensor([[-1, -1, -1, -1], [3, -3, -3, -3], [-5, 5, -5, -5], [7, -7, 7, -7]], dtype=torch.float64)
    torch.testing.assert_close(a, want_a / 2, rtol=0, atol=0)
    torch.testing.assert_close(b, torch.tensor([1.0, -3.0, 5.0, -7.0], dtype=torch.float64) / 2, rtol=0, atol=0)


def test_zero_order_hold_is_the_exact_solution_for_held_inputs() -> None:
    """exp([[A, B], [0, 0]]) = [[A_bar, B_bar], [0, 1]]: an independent way to the same discretisation."""
    a, b = legendre_system(6, theta=7.0)
    a_bar, b_bar = zero_order_hold(a, b)
    augmented = torch.zeros(7, 7, dtype=torch.float64)
    augmented[:6, :6], augmented[:6, 6] = a, b
    exact = torch.linalg.matrix_exp(augmented)
    torch.testing.assert_close(a_bar, exact[:6, :6], rtol=0, atol=1e-13)
    torch.testing.assert_close(b_bar, exact[:6, 6], rtol=0, atol=1e-13)


def recurrence(u: torch.Tensor, a_bar: torch.Tensor, b_bar: torch.Tensor) -> torch.Tensor:
    """m_t = A_bar m_{t-1} + B_bar u_t, one step at a time: (N, T) -> (N, T, d)."""
    m = u.new_zeros(u.shape[0], a_bar.shape[0])
    out = []
    for t in range(u.shape[1]):
        m = m @ a_bar.T + u[:, t : t + 1] * b_bar
        out.append(m)
    return torch.stack(out, 1)


@pytest.mark.parametrize(("dtype", "steps", "tolerance"), [(torch.float64, 300, 1e-10), (torch.float32, 1000, 1e-5)])
def test_fft_memory_equals_the_step_by_step_recurrence(dtype: torch.dtype, steps: int, tolerance: float) -> None:
    a_bar, b_bar = zero_order_hold(*legendre_system(32, theta=50.0))
    u = torch.randn(4, steps, dtype=dtype, generator=torch.Generator().manual_seed(0))
    want = recurrence(u, a_bar.to(dtype), b_bar.to(dtype))
    got = causal_fft_conv(u, impulse_response(a_bar, b_bar, steps).to(dtype))
    torch.testing.assert_close(got, want, rtol=0, atol=tolerance)


def test_memory_holds_the_window_of_the_input() -> None:
    """What makes it a Legendre memory: the coefficients decode the input now (alternating sum, P_i(1) (-1)^i) and
    theta frames ago (sum), for a signal slow against the window (d = 12 coefficients, theta = 40 frames)."""
    a_bar, b_bar = zero_order_hold(*legendre_system(12, theta=40.0))
    t = torch.arange(400, dtype=torch.float64)
    u = torch.sin(2 * math.pi * t / 200)
    m = causal_fft_conv(u, impulse_response(a_bar, b_bar, 400))[100:]
    signs = (-1.0) ** torch.arange(12, dtype=torch.float64)
    assert (m @ signs - u[100:]).abs().max() < 0.02
    assert (m.sum(-1) - u[60:360]).abs().max() < 0.03


def test_tanh_recurrence_passes_gradcheck() -> None:
    torch.manual_seed(0)
    gx = torch.randn(2, 3, 6, 4, dtype=torch.float64, requires_grad=True)
    w = (0.5 * torch.randn(2, 4, 4, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(TanhRNNFunction.apply, (gx, w))


def test_parallel_layer_equals_the_stepped_layer_with_gradients() -> None:
    torch.manual_seed(1)
    layer = LMUBiLayer(5, 6, order=8, theta=10.0, memories=2).double()
    x = torch.randn(3, 40, 5, dtype=torch.float64, requires_grad=True)
    lengths, weights = torch.tensor([40, 31, 12]), torch.randn(3, 40, 12, dtype=torch.float64)
    results = []
    for parallel in (True, False):
        layer.parallel = parallel
        x.grad = None
        layer.zero_grad()
        out = layer(x, lengths)
        (out * weights).sum().backward()
        results.append([out.detach(), x.grad.clone(), *(p.grad.clone() for p in layer.parameters())])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-11)


def test_lmu_layer_passes_gradcheck() -> None:
    torch.manual_seed(2)
    layer = LMUBiLayer(2, 3, order=3, theta=4.0, memories=2).double()
    x = torch.randn(2, 5, 2, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, values, strict=True)), (x, torch.tensor([5, 4])))

    assert torch.autograd.gradcheck(run, (x, *params), fast_mode=True)
