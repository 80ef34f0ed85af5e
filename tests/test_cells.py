"""Cell choices: the peephole family's hand-written backward (gradcheck) and equations (every Greff variant, the 1997
LSTM), padding safety of every cell, parameter counts, config errors."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
from conftest import assert_matches_reference_per_sequence, assert_padding_safe

from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.cells import VARIANTS, GatedLSTMFunction, PeepholeBiLSTMLayer, variant_spec
from lstm_asr.nn.model import BLSTMCTC, CELLS, ModelConfig
from lstm_asr.recipe import recipe_from_dict

FAMILY = list(VARIANTS)  # peephole, Greff et al.'s eight variants, lstm1997


def function_inputs(spec, batch: int = 2, steps: int = 5, hidden: int = 3, states: bool = True) -> list:
    """Random float64 inputs of :class:`GatedLSTMFunction` for ``spec`` (None where the variant has no such input)."""
    blocks, peeps = len(spec.gates), len(spec.peephole_gates)

    def rand(*shape, scale=1.0):
        return (scale * torch.randn(*shape, dtype=torch.float64)).requires_grad_()

    return [rand(2, batch, steps, blocks * hidden), rand(2, hidden, blocks * hidden, scale=0.5),
            rand(2, peeps, hidden) if peeps else None,
            rand(2, 3 * hidden, 3 * hidden, scale=0.5) if spec.gate_recurrence else None,
            rand(2, batch, hidden) if states else None, rand(2, batch, hidden) if states else None]


@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("cell", FAMILY)
def test_peephole_family_recurrence_passes_gradcheck(cell: str, activation: str) -> None:
    """The hand-written backward of every variant, initial states included, against finite differences."""
    spec = variant_spec(cell, activation)
    torch.manual_seed(0)
    inputs = function_inputs(spec)
    present = [t for t in inputs if t is not None]

    def run(*args):
        it = iter(args)
        return GatedLSTMFunction.apply(*[next(it) if t is not None else None for t in inputs], spec)[0]

    assert torch.autograd.gradcheck(run, present)


def test_the_recurrence_continues_from_the_states_it_returns() -> None:
    """What a chunked or streaming mode needs: two chunks, the second started from the first's final states, give
    the one-pass outputs exactly."""
    spec = VARIANTS["peephole"]
    torch.manual_seed(3)
    gx, w, peep, _, _, _ = function_inputs(spec, steps=8, states=False)
    whole, cs = GatedLSTMFunction.apply(gx, w, peep, None, None, None, spec)
    first, cs1 = GatedLSTMFunction.apply(gx[:, :, :5], w, peep, None, None, None, spec)
    second, _ = GatedLSTMFunction.apply(gx[:, :, 5:], w, peep, None, first[:, :, -1], cs1[-1], spec)
    torch.testing.assert_close(torch.cat([first, second], 2), whole, rtol=0, atol=1e-14)
    torch.testing.assert_close(cs1[-1], cs[5], rtol=0, atol=1e-14)


def reference_peephole(layer: PeepholeBiLSTMLayer, x: torch.Tensor, direction: int) -> torch.Tensor:
    """The equations of the layer's variant (Greff et al. 2017, Table/Fig. 1) written plainly, one step at a time,
    for one direction of one sequence."""
    spec, hidden = layer.spec, layer.hidden
    w_ih, w_hh, b = layer.weight_ih[direction], layer.weight_hh[direction], layer.bias[direction]
    peep = {g: layer.peephole[direction, k] for k, g in enumerate(spec.peephole_gates)}
    h = c = x.new_zeros(hidden)
    gates_prev = x.new_zeros(3 * hidden)
    out = []
    for x_t in x:
        z = w_ih @ x_t + w_hh @ h + b
        if spec.gate_recurrence:  # FGR: i, f, o also see the previous step's i, f, o
            z = z + torch.cat([layer.gate_weight[direction] @ gates_prev, x.new_zeros(hidden)])
        zs = dict(zip(spec.gates, z.split(hidden), strict=True))
        i = torch.sigmoid(zs["i"] + peep.get("i", 0) * c) if spec.input_gate else 1
        if spec.forget_gate == "gate":
            f = torch.sigmoid(zs["f"] + peep.get("f", 0) * c)
        else:
            f = 1 - i if spec.forget_gate == "coupled" else 1
        g = torch.tanh(zs["g"]) if spec.input_activation else zs["g"]
        c = f * c + i * g
        o = torch.sigmoid(zs["o"] + peep.get("o", 0) * c) if spec.output_gate else 1  # o sees the new cell state
        h = o * (torch.tanh(c) if spec.output_activation else c)
        if spec.gate_recurrence:
            gates_prev = torch.cat([i, f, o])
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


PADDING_CASES = [dict(cell="gru"), dict(cell="lstm", projection=4),
                 dict(cell="peephole", peephole_output_activation="identity"),
                 *[dict(cell=c) for c in FAMILY],
                 dict(cell="convlstm", freq_bins=5, conv_channels=2, conv_kernel=3),
                 dict(cell="lstm", conv_layers=1, freq_bins=5, conv_channels=2, conv_kernel=3),
                 dict(cell="lmu", lmu_order=6, lmu_theta=4.0, lmu_memories=2)]


@pytest.mark.parametrize("options", PADDING_CASES, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_every_cell_is_padding_safe(options: dict) -> None:
    """A padded batch gives each utterance exactly its own outputs and gradients (as test_model does for lstm)."""
    torch.manual_seed(0)
    assert_padding_safe(BLSTMCTC(ModelConfig(input_dim=10, num_classes=5, hidden=6, layers=2, **options)).double())


def test_every_cell_is_tested_for_padding() -> None:
    assert {case["cell"] for case in PADDING_CASES} == set(CELLS)


def test_cells_differ_in_size_as_expected() -> None:
    sizes = {cell: BLSTMCTC(ModelConfig(input_dim=10, num_classes=5, hidden=8, layers=1, cell=cell)).num_parameters()
             for cell in ("lstm", *FAMILY, "gru")}
    lstm_layer = 2 * (4 * 8 * (10 + 8) + 2 * 4 * 8)  # nn.LSTM keeps two bias vectors
    head = 16 * 5 + 5
    assert sizes["lstm"] == lstm_layer + head
    assert sizes["gru"] == 2 * (3 * 8 * (10 + 8) + 2 * 3 * 8) + head

    def peephole_family(blocks: int, peepholes: int, extra: int = 0) -> int:  # per direction: W, R, b, p (+ FGR)
        return 2 * (blocks * 8 * (10 + 8) + blocks * 8 + peepholes * 8 + extra) + head

    assert sizes["peephole"] == sizes["niaf"] == sizes["noaf"] == peephole_family(4, 3)  # one bias, 3 peepholes
    assert sizes["nig"] == sizes["nfg"] == sizes["nog"] == sizes["cifg"] == peephole_family(3, 2)
    assert sizes["np"] == peephole_family(4, 0)
    assert sizes["fgr"] == peephole_family(4, 3, extra=(3 * 8) ** 2)  # 9 gate-to-gate matrices
    assert sizes["lstm1997"] == peephole_family(3, 0)
    projected = BLSTMCTC(ModelConfig(input_dim=10, num_classes=5, hidden=8, layers=2, projection=3))
    assert projected.output.in_features == 6
    assert projected.layers[1].fwd.input_size == 6


def test_noaf_is_the_peephole_cell_with_identity_output() -> None:
    """One implementation, two names: the same weights give the same outputs, and the checkpoint keys match."""
    torch.manual_seed(0)
    noaf = BLSTMCTC(ModelConfig(input_dim=4, num_classes=5, hidden=6, layers=2, cell="noaf"))
    ident = BLSTMCTC(ModelConfig(input_dim=4, num_classes=5, hidden=6, layers=2, cell="peephole",
                                 peephole_output_activation="identity"))
    assert noaf.state_dict().keys() == ident.state_dict().keys()
    ident.load_state_dict(noaf.state_dict())
    x, lengths = torch.randn(2, 7, 4), torch.tensor([7, 4])
    assert torch.equal(noaf(x, lengths), ident(x, lengths))


@pytest.mark.parametrize("activation", ["tanh", "identity"])
@pytest.mark.parametrize("cell", FAMILY)
def test_peephole_layer_gradients_match_the_equations(cell: str, activation: str) -> None:
    """What training follows: the hand-written recurrence of every variant, through the layer's weight layout, the
    stacked directions and the per-sequence reversal of a padded batch, gives the plain equations' outputs and
    autograd's gradients of them."""
    torch.manual_seed(2)
    layer = PeepholeBiLSTMLayer(3, 4, spec=variant_spec(cell, activation)).double()
    lengths = torch.tensor([7, 5])
    x = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 7, 8, dtype=torch.float64)  # the loss: a fixed linear function of the real outputs
    assert_matches_reference_per_sequence(layer, x, lengths, weights, reference_peephole)


@pytest.mark.parametrize("cell", ["convlstm", "lmu", "fgr", "lstm1997"])
def test_new_cells_are_rebuilt_from_their_checkpointed_config(cell: str) -> None:
    """The checkpoint stores ModelConfig's fields and the weights: they rebuild the same network."""
    torch.manual_seed(0)
    config = ModelConfig(input_dim=6, num_classes=5, hidden=6, layers=2, cell=cell, freq_bins=3, conv_channels=2,
                         conv_kernel=3, lmu_order=4, lmu_theta=3.0, lmu_memories=2)
    model = BLSTMCTC(config)
    again = BLSTMCTC(ModelConfig(**asdict(config)))
    again.load_state_dict(model.state_dict())
    x, lengths = torch.randn(2, 5, 6), torch.tensor([5, 3])
    assert torch.equal(model(x, lengths), again(x, lengths))


def test_bad_cell_options_are_one_line_errors() -> None:
    base = {"corpus": {"path": "x"}}
    with pytest.raises(RecipeError, match=r"model.cell: 'lstmp' is not one of lstm, peephole, gru, nig"):
        recipe_from_dict({**base, "model": {"cell": "lstmp"}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.projection: a projection needs cell lstm, not 'gru'"):
        recipe_from_dict({**base, "model": {"cell": "gru", "projection": 64}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.projection: a projection needs cell lstm, not 'lmu'"):
        recipe_from_dict({**base, "model": {"cell": "lmu", "projection": 64}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"model.projection: must be smaller than model.hidden"):
        recipe_from_dict({**base, "model": {"hidden": 64, "projection": 64}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"model.peephole_output_activation"):
        recipe_from_dict({**base, "model": {"cell": "peephole", "peephole_output_activation": "relu"}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.conv_kernel: 43 is larger than the 41 frequency bins"):
        recipe_from_dict({**base, "model": {"cell": "convlstm", "conv_kernel": 43}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.conv_kernel: 23 is larger than the 21 frequency bins"):
        recipe_from_dict({**base, "model": {"conv_layers": 1, "conv_kernel": 23}, "features": {"num_mel_bins": 20}},
                         "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.conv_kernel: must be odd"):
        recipe_from_dict({**base, "model": {"cell": "convlstm", "conv_kernel": 4}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.cell: ConvLSTM layers .* need features.type fbank"):
        recipe_from_dict({**base, "model": {"cell": "convlstm"}, "features": {"type": "ink"}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.conv_layers: must be below model.layers \(3\)"):
        recipe_from_dict({**base, "model": {"conv_layers": 3}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml: model.lmu_theta: must be > 0"):
        recipe_from_dict({**base, "model": {"cell": "lmu", "lmu_theta": 0}}, "r.yaml")
    with pytest.raises(LstmAsrError, match=r"model.cell: unknown cell type 'rnn'"):
        ModelConfig(input_dim=3, num_classes=4, cell="rnn")
    with pytest.raises(LstmAsrError, match=r"model.projection: .*only supported with cell 'lstm'"):
        ModelConfig(input_dim=3, num_classes=4, cell="peephole", projection=2)
    with pytest.raises(LstmAsrError, match=r"model.conv_kernel: 7 is larger than the 5 frequency bins"):
        ModelConfig(input_dim=10, num_classes=4, cell="convlstm", freq_bins=5, conv_kernel=7)
    with pytest.raises(LstmAsrError, match=r"needs filterbank features"):
        ModelConfig(input_dim=5, num_classes=4, conv_layers=1)
    recipe = recipe_from_dict({**base, "model": {"cell": "peephole", "peephole_output_activation": "identity"}})
    assert (recipe.model.cell, recipe.model.peephole_output_activation) == ("peephole", "identity")
