"""Stacked bidirectional LSTM with a CTC head (or, ``head: transducer``, the encoder of an RNN transducer).

The backward direction of each layer runs a unidirectional ``nn.LSTM`` over *per-sequence reversed* inputs:
utterance ``b`` of length ``L_b`` is reversed over its first ``L_b`` frames only, so its padding stays at the end
and never reaches the backward state of any real frame. Measured on this 2-core CPU (``bench/bench_blstm.py``),
this trains several times faster than ``pack_padded_sequence`` while giving each utterance exactly the outputs it
gets alone in a batch of one.

The cell is chosen in the config: ``lstm`` (nn.LSTM, optionally projected), ``gru``, the peephole LSTM and its
variants (Greff et al. 2017's eight and the 1997 LSTM; ``lstm_asr/nn/cells.py``), ``lmu`` (``lstm_asr/nn/lmu.py``) and
``convlstm`` (``lstm_asr/nn/convlstm.py``; also usable as the lowest ``conv_layers`` layers under any other cell),
and so is frame-rate reduction (input frame stacking with subsampling, pyramidal halving between layers;
``lstm_asr/nn/frame_rate.py``): the network then emits fewer frames than it reads, and :meth:`BLSTMCTC.output_lengths`
says how many.

:class:`BLSTMEncoder` is the stack without an output layer (normalisation, bidirectional layers, frame-rate
reduction); :class:`BLSTMCTC` adds the CTC output layer, and the RNN transducer
(:class:`lstm_asr.nn.transducer.Transducer`) adds a prediction and a joint network to the same encoder, with the same
parameter names, so a CTC model's encoder loads into a transducer as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lstm_asr.data.features import Normalizer
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.cells import VARIANTS, BiLayer, BiRNNLayer, PeepholeBiLSTMLayer, variant_spec
from lstm_asr.nn.chunked import mask_look_ahead, right_context_frames
from lstm_asr.nn.convlstm import ConvLSTMBiLayer
from lstm_asr.nn.dropout import Dropout
from lstm_asr.nn.frame_rate import mask_padding, reduced_length, stack_frames
from lstm_asr.nn.lmu import LMUBiLayer
from lstm_asr.recipe import latency_control_problem

# The peephole family (one hand-written recurrence, lstm_asr/nn/cells.py): the peephole LSTM (Gers & Schmidhuber
# 2000, Greff et al.'s "vanilla"), Greff et al.'s eight variants and the 1997 LSTM.
PEEPHOLE_FAMILY = tuple(VARIANTS)
CELLS = ("lstm", "peephole", "gru", *PEEPHOLE_FAMILY[1:], "convlstm", "lmu")
HEADS = ("ctc", "transducer")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; stored in every checkpoint so a model can be rebuilt without its recipe."""

    input_dim: int
    num_classes: int  # labels + blank (blank is class 0)
    hidden: int = 250
    layers: int = 3
    dropout: float = 0.0
    init: str = "default"  # "default" (PyTorch's) or "uniform" (Graves 2013: U(-init_scale, init_scale))
    init_scale: float = 0.1
    cell: str = "lstm"  # one of CELLS: "lstm" (nn.LSTM), "gru", the peephole family, "convlstm", "lmu"
    projection: int = 0  # LSTMP (Sak et al. 2014): recurrent projection size per direction; 0 = none (lstm only)
    peephole_output_activation: str = "tanh"  # peephole family: h = o * tanh(c), or "identity": h = o * c (NOAF)
    stack_frames: int = 1  # input frames stacked side by side (Sak et al. 2015: 3)
    subsample: int = 1  # keep every n-th stacked frame (Sak et al. 2015: 3, a 30 ms rate)
    pyramid: int = 0  # layers (from the bottom) after which neighbouring frame pairs are concatenated (rate / 2)
    bidirectional: bool = True  # false: forward direction only (a unidirectional stack; lowest latency)
    # Latency-controlled BLSTM (lstm_asr/nn/chunked.py): chunks of chunk_frames input frames, each with right_context
    # input frames of look-ahead; 0 = whole utterance. Both count input (feature) frames, before any reduction.
    chunk_frames: int = 0
    right_context: int = 0
    # ConvLSTM (Shi et al. 2015) over frequency: every layer with cell "convlstm", else the lowest conv_layers.
    conv_layers: int = 0
    conv_channels: int = 8  # state channels (the state is conv_channels x freq_bins per direction)
    conv_kernel: int = 5  # taps along frequency (odd)
    freq_bins: int = 0  # frequency bins of one input frame (mel bins + energy); 0 = not filterbank features
    # LMU (Voelker et al. 2019): Legendre memory of lmu_order coefficients over a window of lmu_theta frames (at
    # the layer's frame rate) for each of lmu_memories inputs; model.hidden is the hidden state's size.
    lmu_order: int = 32
    lmu_theta: float = 50.0
    lmu_memories: int = 8
    # Output head: "ctc", or "transducer" (Graves 2012/2013: prediction network over the previous labels and a
    # joint network; lstm_asr/nn/transducer.py). The fields below shape the transducer only.
    head: str = "ctc"
    pred_hidden: int = 250  # prediction network: LSTM cells per layer (Graves 2013: one layer of 250)
    pred_layers: int = 1
    pred_embedding: int = 0  # its input: 0 = one-hot previous label (Graves), N = a learned N-dim embedding
    pred_context: int = 0  # 0: the LSTM prediction network; N: stateless, the last N labels embedded (Ghodsi 2020)
    joint_dim: int = 250  # joint network: tanh units over the projected encoder and prediction vectors

    def __post_init__(self) -> None:
        if self.init not in ("default", "uniform"):
            raise LstmAsrError(f"model.init: unknown initialisation {self.init!r} (use 'default' or 'uniform')")
        if self.layers < 1 or self.hidden < 1 or self.input_dim < 1 or self.num_classes < 2:
            raise LstmAsrError("model: layers, hidden, input_dim must be >= 1 and num_classes >= 2")
        if not 0.0 <= self.dropout < 1.0:
            raise LstmAsrError(f"model.dropout: {self.dropout} is not in [0, 1)")
        if self.cell not in CELLS:
            raise LstmAsrError(f"model.cell: unknown cell type {self.cell!r} (use {', '.join(CELLS)})")
        if self.projection < 0 or (self.projection and self.cell != "lstm"):
            raise LstmAsrError(f"model.projection: a projection is only supported with cell 'lstm', "
                               f"not {self.cell!r}" if self.projection > 0 else "model.projection: must be >= 0")
        if self.projection >= self.hidden:
            raise LstmAsrError(f"model.projection: {self.projection} must be smaller than model.hidden "
                               f"({self.hidden})")
        if self.peephole_output_activation not in ("tanh", "identity"):
            raise LstmAsrError(f"model.peephole_output_activation: {self.peephole_output_activation!r} is not "
                               "one of tanh, identity")
        if self.conv_layers < 0 or (self.cell != "convlstm" and self.conv_layers >= self.layers):
            raise LstmAsrError(f"model.conv_layers: {self.conv_layers} must be between 0 and model.layers - 1 "
                               f"({self.layers - 1}); for ConvLSTM layers only use model.cell convlstm")
        if self.uses_conv:
            if self.freq_bins < 1 or (self.input_dim * self.stack_frames) % self.freq_bins:
                raise LstmAsrError("model.cell convlstm / model.conv_layers: the ConvLSTM needs filterbank features "
                                   "(features.type fbank), whose frames are channels of frequency bins")
            if self.conv_channels < 1 or self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
                raise LstmAsrError(f"model.conv_channels and model.conv_kernel must be >= 1 and the kernel odd "
                                   f"(got {self.conv_channels}, {self.conv_kernel})")
            if self.conv_kernel > self.freq_bins:
                raise LstmAsrError(f"model.conv_kernel: {self.conv_kernel} is larger than the {self.freq_bins} "
                                   "frequency bins of the features")
        if self.lmu_order < 1 or self.lmu_memories < 1 or not self.lmu_theta > 0:
            raise LstmAsrError("model.lmu_order, lmu_memories and lmu_theta must be > 0")
        if self.stack_frames < 1 or self.subsample < 1:
            raise LstmAsrError("model.stack_frames and model.subsample must be >= 1")
        if not 0 <= self.pyramid < self.layers:
            raise LstmAsrError(f"model.pyramid: {self.pyramid} must be between 0 and model.layers - 1 "
                               f"({self.layers - 1})")
        problem = latency_control_problem(self.cell, self.bidirectional, self.chunk_frames, self.right_context,
                                          self.frame_reduction)
        if problem is not None:
            raise LstmAsrError(f"{problem[0]}: {problem[1]}")
        if self.head not in HEADS:
            raise LstmAsrError(f"model.head: unknown head {self.head!r} (use {', '.join(HEADS)})")
        if self.pred_hidden < 1 or self.pred_layers < 1 or self.joint_dim < 1 or self.pred_embedding < 0:
            raise LstmAsrError("model: pred_hidden, pred_layers and joint_dim must be >= 1, pred_embedding >= 0")
        if self.pred_context < 0:
            raise LstmAsrError("model.pred_context must be >= 0 (0: the LSTM prediction network)")

    @property
    def frame_reduction(self) -> int:
        """How many input frames make one output frame (output frame shift / input frame shift)."""
        return self.subsample * 2**self.pyramid

    @property
    def uses_conv(self) -> bool:
        """Whether any layer is a ConvLSTM layer."""
        return self.cell == "convlstm" or self.conv_layers > 0


class BiLSTMLayer(BiRNNLayer):
    """One bidirectional layer: forward LSTM on the inputs, backward LSTM on per-sequence reversed inputs."""

    def __init__(self, input_dim: int, hidden: int, projection: int = 0, bidirectional: bool = True) -> None:
        super().__init__(input_dim, hidden, "lstm", projection, bidirectional)


def make_layer(config: ModelConfig, input_dim: int, depth: int = 0) -> BiLayer:
    """Bidirectional layer number ``depth`` (0 = lowest) of the configured stack; its ``output_dim`` is what the
    next layer reads."""
    if config.cell == "convlstm" or depth < config.conv_layers:
        return ConvLSTMBiLayer(input_dim, config.freq_bins, config.conv_channels, config.conv_kernel)
    if config.cell in PEEPHOLE_FAMILY:
        return PeepholeBiLSTMLayer(input_dim, config.hidden,
                                   spec=variant_spec(config.cell, config.peephole_output_activation))
    if config.cell == "lmu":
        return LMUBiLayer(input_dim, config.hidden, config.lmu_order, config.lmu_theta, config.lmu_memories)
    if config.cell == "gru":
        return BiRNNLayer(input_dim, config.hidden, "gru", bidirectional=config.bidirectional)
    return BiLSTMLayer(input_dim, config.hidden, config.projection, config.bidirectional)


class BLSTMEncoder(nn.Module):
    """Normalisation -> stacked bidirectional layers (with any frame-rate reduction): the part of the network that
    reads the features. :meth:`encode` maps (B, T, D) un-normalised features to (B, T', H) hidden vectors.

    The weights are created here but initialised by the complete model (:func:`init_weights`), once all its layers
    exist, so a seed gives the same weights as before the encoder was a class of its own.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Feature normalisation lives in the model so checkpoints and exports carry the training statistics.
        self.normalizer = Normalizer(config.input_dim)
        layers, dim = [], config.input_dim * config.stack_frames
        for i in range(config.layers):
            layers.append(make_layer(config, dim, i))
            # A pyramid step after this layer concatenates frame pairs: the next layer reads twice the width.
            dim = layers[-1].output_dim * (2 if i < config.pyramid else 1)
        self.layers = nn.ModuleList(layers)
        self.dropout = Dropout(config.dropout)  # bulk CPU mask (lstm_asr/nn/dropout.py)
        self.encoder_dim = dim

    @property
    def frame_reduction(self) -> int:
        """Input frames per output frame (token times: output frame index x frame shift x this)."""
        return self.config.frame_reduction

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames per utterance for input ``lengths`` (the lengths to give the CTC loss and decoders)."""
        c = self.config
        if c.stack_frames > 1 or c.subsample > 1:
            lengths = reduced_length(lengths, c.subsample)
        for _ in range(c.pyramid):
            lengths = reduced_length(lengths, 2)
        return lengths

    @property
    def latency_controlled(self) -> bool:
        """True when the layers run chunk by chunk with a bounded look-ahead (``model.chunk_frames``)."""
        return bool(self.config.chunk_frames) and self.config.bidirectional

    def encode(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The top layer's outputs (B, T', H), dropout applied; frames at or past ``output_lengths`` are padding."""
        c = self.config
        x, lengths = stack_frames(self.normalizer(features), lengths, c.stack_frames, c.subsample)
        if self.latency_controlled:
            return self._chunked_layers(x, lengths)
        for i, layer in enumerate(self.layers):
            # Dropout on each layer's output (Graves-style), never on the input features.
            x = self.dropout(layer(x, lengths))
            if i < c.pyramid:
                x, lengths = stack_frames(x, lengths, 2, 2)
        return x

    def _chunked_layers(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The layers latency-controlled over whole (padded) utterances: every window's look-ahead frames travel
        through all layers beside the chunks (lstm_asr/nn/chunked.py), all windows at once."""
        c = self.config
        chunk, right = c.chunk_frames // c.subsample, c.right_context // c.subsample  # in the layers' frames
        windows = max(1, -(-x.shape[1] // chunk))
        look_ahead = right_context_frames(mask_padding(x, lengths), windows, chunk, right)
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, look_ahead = layer.chunked(x, look_ahead, lengths, chunk, need_look_ahead=i < last)
            x, look_ahead = self.dropout(x), self.dropout(look_ahead)
            if i < c.pyramid:
                # Frame pairs are concatenated in the chunks and in the look-ahead alike (both even lengths).
                look_ahead = mask_look_ahead(look_ahead, lengths, chunk)
                b, k, r, d = look_ahead.shape
                look_ahead = look_ahead.reshape(b, k, r // 2, 2 * d)
                x, lengths = stack_frames(x, lengths, 2, 2)
                chunk //= 2
        return x

    def num_parameters(self) -> int:
        """Number of trainable weights of the whole model (Graves 2013 quotes 3.8M for CTC-3L-250H with 123 inputs
        and 62 outputs, 4.3M for the transducer)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder's weights and normalisation statistics, under the names both heads use."""
        return {k: v for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}


ENCODER_PREFIXES = ("normalizer.", "layers.")


def init_weights(model: nn.Module, config: ModelConfig) -> None:
    """``init: uniform``: every weight U(-init_scale, init_scale) (Graves 2013); ``default`` keeps PyTorch's."""
    if config.init == "uniform":
        for p in model.parameters():
            nn.init.uniform_(p, -config.init_scale, config.init_scale)


class BLSTMCTC(BLSTMEncoder):
    """Normalisation -> stacked BLSTM -> linear -> log-softmax over blank + labels.

    ``forward(features (B, T, D), lengths (B,))`` takes un-normalised features and returns log-probabilities
    (B, T', C). Outputs at padded frames are meaningless and must be ignored (the CTC loss and decoders use
    ``output_lengths(lengths)``). T' = T unless the config reduces the frame rate.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.output = nn.Linear(self.encoder_dim, config.num_classes)
        init_weights(self, config)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.log_probs(self.encode(features, lengths))

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The output layer and log-softmax, in float32 at least: CPU autocast would hand bf16 log-probs to the CTC
        loss and the decoders. (``self.output`` may be int8-quantized, whose weight is a method, not a tensor.)"""
        y = self.output(x)
        return torch.log_softmax(y.float() if y.dtype in (torch.bfloat16, torch.float16) else y, dim=-1)


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean per-utterance CTC loss (negative log likelihood, nats) of a batch.

    ``log_probs`` is (B, T, C) batch-first; ``targets`` is the concatenation of all label sequences. Computed in
    float32 even under autocast, since the CTC recursions underflow in half precision. ``zero_infinity`` stays off:
    infeasible utterances are filtered (and counted) before training, so an infinite loss is a real fault.
    """
    lp = log_probs.float().transpose(0, 1)
    return nn.functional.ctc_loss(lp, targets, lengths, target_lengths, blank=0, reduction="sum",
                                  zero_infinity=False) / log_probs.shape[0]

