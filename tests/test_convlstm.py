"""The ConvLSTM over frequency: banded matrices are the convolutions, the layer is Shi et al.'s equations, gradcheck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from conftest import assert_matches_reference_per_sequence

from lstm_asr.nn.convlstm import ConvLSTMBiLayer, banded, shift_matrices


def test_banded_matrix_is_the_convolution_along_frequency() -> None:
    torch.manual_seed(0)
    kernels = torch.randn(2, 6, 3, 5, dtype=torch.float64)  # (directions, out channels, in channels, taps)
    maps = torch.randn(4, 3, 9, dtype=torch.float64)  # 4 frames of 3 channels x 9 bins
    matrix = banded(kernels, shift_matrices(5, 9).double())
    for d in range(2):
        want = F.conv1d(maps, kernels[d], padding=2).reshape(4, 6 * 9)
        torch.testing.assert_close(maps.reshape(4, 27) @ matrix[d].T, want, rtol=0, atol=1e-12)


def reference_convlstm(layer: ConvLSTMBiLayer, x: torch.Tensor, direction: int) -> torch.Tensor:
    """Shi et al. (2015)'s peephole ConvLSTM one step at a time with conv1d, for one direction of one sequence."""
    k, bins, pad = layer.channels, layer.bins, layer.kernel // 2
    wx, wh, b = layer.input_kernel[direction], layer.recurrent_kernel[direction], layer.bias[direction]
    peep = layer.peephole[direction].view(3, k, bins)
    h = c = x.new_zeros(k, bins)
    out = []
    for x_t in x:
        z = F.conv1d(x_t.view(1, -1, bins), wx, padding=pad)[0] + F.conv1d(h[None], wh, padding=pad)[0] \
            + b[:, None]
        zi, zf, zg, zo = z.split(k)
        i = torch.sigmoid(zi + peep[0] * c)
        f = torch.sigmoid(zf + peep[1] * c)
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + peep[2] * c)
        h = o * torch.tanh(c)
        out.append(h.reshape(-1))
    return torch.stack(out)


def test_convlstm_layer_is_shi_et_al_in_both_directions_with_their_gradients() -> None:
    torch.manual_seed(1)
    layer = ConvLSTMBiLayer(input_dim=2 * 7, bins=7, channels=3, kernel=3).double()
    lengths = torch.tensor([6, 4])
    x = torch.randn(2, 6, 14, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 6, layer.output_dim, dtype=torch.float64)
    assert_matches_reference_per_sequence(layer, x, lengths, weights, reference_convlstm)


def test_convlstm_layer_passes_gradcheck() -> None:
    """The kernels enter through the banded matrices: gradcheck the whole layer, inputs and kernels."""
    torch.manual_seed(2)
    layer = ConvLSTMBiLayer(input_dim=6, bins=3, channels=2, kernel=3).double()
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def run(x: torch.Tensor, *values: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, values, strict=True)), (x, lengths))

    assert torch.autograd.gradcheck(run, (x, *params), fast_mode=True)
