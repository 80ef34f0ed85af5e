"""Cell choices: the peephole LSTM's hand-written backward (gradcheck), padding safety of every cell, config errors."""

from __future__ import annotations

import pytest
import torch
from conftest import assert_padding_safe

from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.cells import PeepholeBiLSTMLayer, PeepholeLSTMFunction
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.recipe import recipe_from_dict


@pytest.mark.parametrize("identity", [False, True])
def test_peephole_recurrence_passes_gradcheck(identity: bool) -> None:
    torch.manual_seed(0)
    gx = torch.randn(2, 3, 6, 4 * 5, dtype=torch.float64, requires_grad=True)  # (directions, batch, time, 4H)
    w_hh_t = (0.5 * torch.randn(2, 5, 4 * 5, dtype=torch.float64)).requires_grad_()
    peep = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: PeepholeLSTMFunction.apply(a, b, c, identity), (gx, w_hh_t, peep))


def reference_peephole(layer: PeepholeBiLSTMLayer, x: torch.Tensor, direction: int) -> torch.Tensor:
    """The Gers & Schmidhuber equations written plainly, one step at a time, for one direction of one sequence."""
    w_ih, w_hh, b, p = layer.weight_ih[direction], layer.weight_hh[direction], layer.bias[direction], \
        layer.peephole[direction]
    h = c = x.new_zeros(layer.hidden)
    out = []
    for x_t in x:
        z = w_ih @ x_t + w_hh @ h + b
        zi, zf, zg, zo = z.chunk(4)
        i = torch.sigmoid(zi + p[0] * c)
        f = torch.sigmoid(zf + p[1] * c)
        c = f * c + i * torch.tanh(zg)
        o = torch.sigmoid(zo + p[2] * c)  # the output gate sees the new cell state
        h = o * (c if layer.identity else torch.tanh(c))
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_peephole_layer_matches_the_equations_in_both_directions(activation: str) -> None:
    torch.manual_seed(1)
    layer = PeepholeBiLSTMLayer(3, 4, activation).double()
    x = torch.randn(1, 7, 3, dtype=torch.float64)
    out = layer(x, torch.tensor([7]))[0]
    torch.testing.assert_close(out[:, :4], reference_peephole(layer, x[0], 0))
    torch.testing.assert_close(out[:, 4:], reference_peephole(layer, x[0].flip(0), 1).flip(0))


@pytest.mark.parametrize("options", [dict(cell="peephole"), dict(cell="gru"), dict(cell="lstm", projection=4),
                                     dict(cell="peephole", peephole_output_activation="identity")])
def test_every_cell_is_padding_safe(options: dict) -> None:
    """A padded batch gives each utterance exactly its own outputs and gradients (as test_model does for lstm)."""
    torch.manual_seed(0)
    assert_padding_safe(BLSTMCTC(ModelConfig(input_dim=5, num_classes=5, hidden=6, layers=2, **options)).double())


def test_cells_differ_in_size_as_expected() -> None:
    sizes = {cell: BLSTMCTC(ModelConfig(input_dim=10, num_classes=5, hidden=8, layers=1, cell=cell)).num_parameters()
             for cell in ("lstm", "peephole", "gru")}
    lstm_layer = 2 * (4 * 8 * (10 + 8) + 2 * 4 * 8)  # nn.LSTM keeps two bias vectors
    head = 16 * 5 + 5
    assert sizes["lstm"] == lstm_layer + head
    assert sizes["peephole"] == 2 * (4 * 8 * (10 + 8) + 4 * 8 + 3 * 8) + head  # one bias, three peephole vectors
    assert sizes["gru"] == 2 * (3 * 8 * (10 + 8) + 2 * 3 * 8) + head
    projected = BLSTMCTC(ModelConfig(input_dim=10, num_classes=5, hidden=8, layers=2, projection=3))
    assert projected.output.in_features == 6
    assert projected.layers[1].fwd.input_size == 6


@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_peephole_layer_gradients_match_the_equations(activation: str) -> None:
    """What training follows: the hand-written backward, through the layer's weight layout, the stacked directions
    and the per-sequence reversal of a padded batch, gives autograd's gradients of the plain equations."""
    torch.manual_seed(2)
    layer = PeepholeBiLSTMLayer(3, 4, activation).double()
    lengths = torch.tensor([7, 5])
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 7, 8, dtype=torch.float64)  # the loss: a fixed linear function of the real outputs
    out = layer(x, lengths)
    sum((out[b, :n] * weights[b, :n]).sum() for b, n in enumerate(lengths.tolist())).backward()
    got = [t.grad.clone() for t in (x, *layer.parameters())]
    for t in (x, *layer.parameters()):
        t.grad = None
    for b, n in enumerate(lengths.tolist()):
        seq = x[b, :n]
        ref = torch.cat([reference_peephole(layer, seq, 0), reference_peephole(layer, seq.flip(0), 1).flip(0)], -1)
        (ref * weights[b, :n]).sum().backward()
    assert x.grad[1, 5:].abs().max() == 0  # the padding gets no gradient
    for g, t in zip(got, (x, *layer.parameters()), strict=True):
        torch.testing.assert_close(g, t.grad)


def test_bad_cell_options_are_one_line_errors() -> None:
    base = {"corpus": {"path": "x"}}
    with pytest.raises(RecipeError, match=r"model.cell: 'lstmp' is not one of lstm, peephole, gru"):
        recipe_from_dict({**base, "model": {"cell": "lstmp"}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.projection: a projection needs cell lstm, not 'gru'"):
        recipe_from_dict({**base, "model": {"cell": "gru", "projection": 64}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"model.projection: must be smaller than model.hidden"):
        recipe_from_dict({**base, "model": {"hidden": 64, "projection": 64}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"model.peephole_output_activation"):
        recipe_from_dict({**base, "model": {"cell": "peephole", "peephole_output_activation": "relu"}}, "r.yaml")
    with pytest.raises(LstmAsrError, match=r"model.cell: unknown cell type 'rnn'"):
        ModelConfig(input_dim=3, num_classes=4, cell="rnn")
    with pytest.raises(LstmAsrError, match=r"model.projection: .*only supported with cell 'lstm'"):
        ModelConfig(input_dim=3, num_classes=4, cell="peephole", projection=2)
    recipe = recipe_from_dict({**base, "model": {"cell": "peephole", "peephole_output_activation": "identity"}})
    assert (recipe.model.cell, recipe.model.peephole_output_activation) == ("peephole", "identity")
