"""``lstm-asr export``: a trained model as one self-contained TorchScript file, for every model ``train`` makes.

TorchScript (default): raw 16 kHz mono waveform in [-1, 1] (1-D float tensor) -> log-probabilities (frames,
classes), with the feature pipeline inside (:class:`~lstm_asr.data.kaldi_fbank.ScriptableFbank`), and the token
list, unit type and frame shift as attributes (``tokens``, ``units``, ``sample_rate``, ``frame_shift_ms``,
``frame_seconds``). ``torch.jit.load("model.pt")`` is all a user needs; ``lstm-asr decode --model model.pt`` reads
it too. Every cell (lstm with or without projection, gru, peephole), frame stacking and subsampling, the pyramid,
unidirectional and latency-controlled models export (tests/test_export_kinds.py, one test per kind), and so do
handwriting models, pen strokes in, with the ink front end inside (:mod:`lstm_asr.data.ink_script`).

``--streaming`` writes the streaming pipeline (:class:`~lstm_asr.nn.streaming.StreamingPipeline`, the very code
``decode --stream`` runs): ``initial_state()``, ``step(samples, state) -> (log_probs, state)`` and
``finish(state)``, so an application streams without lstm-asr installed. ``--quantize int8`` applies PyTorch's
dynamic int8 quantization to the LSTM, GRU and linear layers first (an LSTM with a projection stays float: the
quantized LSTM kernel has none).

ONNX, the network alone: :mod:`lstm_asr.export.onnx_export`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.ink_features import InkFeatureConfig
from lstm_asr.data.ink_script import ScriptableInkFeatures
from lstm_asr.data.kaldi_fbank import ScriptableFbank
from lstm_asr.errors import LstmAsrError, reporting_write_errors
from lstm_asr.nn.cells import VARIANTS, BiRNNLayer, PeepholeBiLSTMLayer
from lstm_asr.nn.frame_rate import stack_frames
from lstm_asr.nn.model import BLSTMCTC, BLSTMEncoder
from lstm_asr.nn.quantize import quantized
from lstm_asr.nn.streaming import StreamingNetwork, StreamingPipeline, stream_layer
from lstm_asr.recognition.recognizer import Recognizer


class _PeepholeWhole(nn.Module):
    """The peephole layer on one utterance, in TorchScript: the equations of
    :class:`~lstm_asr.nn.cells.PeepholeLSTMFunction` (both directions stacked, one step per frame), without the
    hand-written backward that only training needs."""

    def __init__(self, layer: PeepholeBiLSTMLayer) -> None:
        super().__init__()
        self.weight_ih, self.weight_hh, self.bias, self.peephole = (layer.weight_ih, layer.weight_hh, layer.bias,
                                                                    layer.peephole)
        self.hidden = layer.hidden
        self.identity = layer.identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, hidden = x.shape[1], self.hidden
        xs = torch.stack([x[0], x[0].flip(0)])  # (2, T, D): the backward direction reads the utterance reversed
        gx = torch.baddbmm(self.bias.unsqueeze(1), xs, self.weight_ih.transpose(1, 2))  # (2, T, 4H)
        w_hh_t = self.weight_hh.transpose(1, 2)
        h = x.new_zeros((2, 1, hidden))
        c = x.new_zeros((2, hidden))
        outs = []
        for t in range(steps):
            z = gx[:, t] + torch.bmm(h, w_hh_t)[:, 0]
            i = torch.sigmoid(z[:, :hidden] + self.peephole[:, 0] * c)
            f = torch.sigmoid(z[:, hidden:2 * hidden] + self.peephole[:, 1] * c)
            c = f * c + i * torch.tanh(z[:, 2 * hidden:3 * hidden])
            o = torch.sigmoid(z[:, 3 * hidden:] + self.peephole[:, 2] * c)
            out = o * c if self.identity else o * torch.tanh(c)
            outs.append(out)
            h = out.unsqueeze(1)
        hs = torch.stack(outs, dim=1)  # (2, T, H)
        return torch.cat([hs[0], hs[1].flip(0)], dim=-1).unsqueeze(0)


class _RNNWhole(nn.Module):
    """An nn.LSTM/nn.GRU layer on one utterance: the training layer's operations (reversal within the length is a
    flip when there is no padding), so the exported model's outputs equal the experiment's bit for bit."""

    def __init__(self, layer: BiRNNLayer) -> None:
        super().__init__()
        self.stream = stream_layer(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stream.whole(x)


def _whole_layer(layer: nn.Module) -> nn.Module:
    if isinstance(layer, PeepholeBiLSTMLayer):
        # The TorchScript recurrence is the peephole LSTM's (with or without the output activation); Greff et al.'s
        # other variants and the 1997 LSTM have other equations and no TorchScript form yet.
        if layer.spec not in (VARIANTS["peephole"], VARIANTS["noaf"]):
            name = next((k for k, v in VARIANTS.items() if v == layer.spec), "a peephole-family variant")
            raise LstmAsrError(f"export: no TorchScript form for model.cell {name} (peephole, lstm, gru and their "
                               "projections export)")
        return _PeepholeWhole(layer)
    if isinstance(layer, BiRNNLayer):
        return _RNNWhole(layer)
    raise LstmAsrError(f"export: no TorchScript form for the layer {type(layer).__name__}")


class SingleUtteranceEncoder(nn.Module):
    """The trained encoder's weights, applied to one utterance (features (T, D) -> encoder frames (1, T', 2H)): the
    model's own normalisation, frame stacking, layers and pyramid without batching. The CTC and the transducer
    exports both run it."""

    def __init__(self, model: BLSTMEncoder) -> None:
        super().__init__()
        c = model.config
        if model.latency_controlled:
            raise LstmAsrError("a latency-controlled model exports through its streaming network")
        self.normalizer = model.normalizer
        self.layers = nn.ModuleList(_whole_layer(layer) for layer in model.layers)
        self.stack, self.subsample, self.pyramid = c.stack_frames, c.subsample, c.pyramid

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # The length as a tensor computed from the input (not torch.tensor([T]), which an ONNX trace freezes to the
        # example's length, and frame stacking would then mask every frame past it).
        lengths = torch.ones_like(features[:, 0], dtype=torch.long).sum(0, keepdim=True)
        x, lengths = stack_frames(self.normalizer(features).unsqueeze(0), lengths, self.stack, self.subsample)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.pyramid:
                x, lengths = stack_frames(x, lengths, 2, 2)
        return x


class SingleUtteranceNetwork(nn.Module):
    """The trained network's weights, applied to one utterance (features (T, D) -> log-probs (T', C)): the
    model's own forward pass (normalisation, frame stacking, layers, pyramid, output) without batching."""

    def __init__(self, model: BLSTMCTC) -> None:
        super().__init__()
        self.encoder = SingleUtteranceEncoder(model)
        self.output = model.output

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.output(self.encoder(features)), dim=-1)[0]


class ChunkedUtteranceNetwork(nn.Module):
    """A latency-controlled model on one utterance: its streaming network fed the whole utterance at once (the
    same outputs as its batched training pass, to float rounding: tests/test_streaming.py)."""

    def __init__(self, model: BLSTMCTC) -> None:
        super().__init__()
        self.stream = StreamingNetwork(model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        log_probs, _ = self.stream.step(features, self.stream.initial_state(), True)
        return log_probs


def network_for_export(model: BLSTMCTC) -> nn.Module:
    """Features (T, D) -> log-probs (T', C) for one utterance, in a form TorchScript compiles."""
    return ChunkedUtteranceNetwork(model) if model.latency_controlled else SingleUtteranceNetwork(model)


class ExportedMetadata(nn.Module):
    """The base of every exported module: what :meth:`~lstm_asr.recognition.recognizer.Recognizer.load` reads besides
    the network, as typed attributes of the TorchScript file: the token list, unit type, corpus type and the feature
    settings (JSON), and for an audio model its sample rate and frame shift."""

    def __init__(self, features: FeatureConfig | InkFeatureConfig, tokens: list[str], units: str,
                 corpus_type: str) -> None:
        super().__init__()
        self.tokens: list[str] = list(tokens)
        self.units: str = units
        self.corpus_type: str = corpus_type
        self.feature_config: str = json.dumps(features.to_dict())
        if isinstance(features, FeatureConfig):
            self.sample_rate: int = features.sample_rate
            self.frame_shift_ms: float = features.frame_shift_ms


class ExportedModel(ExportedMetadata):
    """Waveform -> log-probabilities, with the token list and unit type on board."""

    def __init__(self, model: BLSTMCTC, features: FeatureConfig, tokens: list[str], units: str,
                 corpus_type: str) -> None:
        super().__init__(features, tokens, units, corpus_type)
        self.features = ScriptableFbank(features)
        self.network = network_for_export(model)
        self.frame_seconds: float = features.frame_shift_ms / 1000 * model.frame_reduction

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.network(self.features(waveform))


class ExportedInkModel(ExportedMetadata):
    """Pen strokes (a list of (n, 3) tensors: x, y, t in seconds) -> log-probabilities, with the ink normalisation
    inside (:class:`~lstm_asr.data.ink_script.ScriptableInkFeatures`) and the character list on board."""

    def __init__(self, model: BLSTMCTC, features: InkFeatureConfig, tokens: list[str], units: str,
                 corpus_type: str) -> None:
        super().__init__(features, tokens, units, corpus_type)
        self.features = ScriptableInkFeatures(features)
        self.network = network_for_export(model)
        self.input_type: str = "ink"

    def forward(self, strokes: list[torch.Tensor]) -> torch.Tensor:
        return self.network(self.features(strokes))


class ExportedStream(ExportedMetadata):
    """The streaming pipeline with the token list on board: ``initial_state()``, ``step(samples, state)``,
    ``finish(state)``; ``forward(waveform)`` streams a whole recording in one step (for ``decode --model``)."""

    def __init__(self, model: BLSTMCTC, features: FeatureConfig, tokens: list[str], units: str, corpus_type: str,
                 chunk_frames: int = 0, right_context: int = -1) -> None:
        super().__init__(features, tokens, units, corpus_type)
        self.pipeline = StreamingPipeline(model, features, chunk_frames, right_context)
        self.frame_seconds: float = features.frame_shift_ms / 1000 * model.frame_reduction
        self.chunk_frames: int = self.pipeline.chunk_frames
        self.right_context: int = self.pipeline.right_context

    @torch.jit.export
    def initial_state(self) -> dict[str, torch.Tensor]:
        return self.pipeline.initial_state()

    @torch.jit.export
    def step(self, samples: torch.Tensor, state: dict[str, torch.Tensor],
             final: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.pipeline.step(samples, state, final)

    @torch.jit.export
    def finish(self, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.pipeline.finish(state)

    @torch.jit.export
    def samples_needed(self, chunks: int) -> int:
        return self.pipeline.samples_needed(chunks)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        log_probs, _ = self.pipeline.step(waveform, self.pipeline.initial_state(), True)
        return log_probs


def experiment_to_export(exp: str | Path) -> Recognizer:
    """The experiment (folder or checkpoint) an export writes out; an already exported file is a one-line error."""
    rec = Recognizer.load(exp)
    if rec.model is None:
        raise LstmAsrError(f"{exp}: already an exported model; export from the experiment folder")
    return rec


def save_script(module: nn.Module, out: str | Path) -> Path:
    """Script ``module`` and write it to ``out``: an inference-only file whose outputs carry no autograd graph."""
    for p in module.parameters():  # a caller without torch.no_grad() would otherwise record a backward graph
        p.requires_grad_(False)
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, which has no LSTM yet
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(module)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with reporting_write_errors(out, "the exported model"):
        scripted.save(str(out))
    return out


def export_torchscript(exp: str | Path, out: str | Path, streaming: bool = False, quantize: str = "",
                       chunk_frames: int = 0, right_context: int = -1) -> Path:
    """Write the experiment's best model as a TorchScript file (whole recordings, or with ``streaming`` the
    streaming pipeline); returns ``out``."""
    rec = experiment_to_export(exp)
    model = quantized(rec.model.eval(), quantize)
    if isinstance(rec.features, InkFeatureConfig):
        if streaming:
            raise LstmAsrError(f"{exp}: --streaming streams audio; a handwriting model exports whole (drop it)")
        return save_script(ExportedInkModel(model, rec.features, rec.tokens, rec.units, rec.corpus_type).eval(),
                            out)
    if streaming:
        if not model.config.chunk_frames and not chunk_frames:
            chunk_frames = 40 + (-40) % model.frame_reduction  # a whole-utterance model: 0.4 s chunks ...
            right_context = chunk_frames if right_context < 0 else right_context  # ... and as much look-ahead
        module: nn.Module = ExportedStream(model, rec.features, rec.tokens, rec.units, rec.corpus_type,
                                           chunk_frames, right_context)
    else:
        module = ExportedModel(model, rec.features, rec.tokens, rec.units, rec.corpus_type)
    return save_script(module.eval(), out)
