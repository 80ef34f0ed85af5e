"""Running a trained network on a stream: feature frames in as they arrive, log-probabilities out, state explicit.

:class:`StreamingNetwork` wraps a :class:`~lstm_asr.nn.model.BLSTMCTC`'s weights (shared, not copied) and runs it
chunk by chunk, latency-controlled (:mod:`lstm_asr.nn.chunked`): a chunk of ``chunk`` network frames is computed
once its ``right`` look-ahead frames have arrived; each layer's forward state is carried to the next chunk, its
backward direction starts afresh at the end of each chunk's window, and the look-ahead frames pass through every
layer. A model trained latency-controlled streams with its own chunk sizes and gives what whole-utterance decoding
gives (to float tolerance); a model trained on whole utterances streams with any chunk sizes, at some cost in
accuracy (``bench/RESULTS.md``); a unidirectional model needs no look-ahead at all.

The state is a ``Dict[str, Tensor]`` and every method compiles with TorchScript, so ``lstm-asr export
--streaming`` puts this very code into the exported file (``step(chunk, state) -> (log_probs, state)``), and one
process can serve many streams with one network, one state per stream.
"""

from __future__ import annotations

import torch
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.kaldi_fbank import StreamingFbank
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.frame_rate import stack_frames
from lstm_asr.nn.model import BLSTMCTC
from lstm_asr.recipe import STREAMABLE_CELLS


class _StreamLayer(nn.Module):
    """One recurrent layer run on a single stream: a chunk, its look-ahead, and the forward state carried."""

    def __init__(self, fwd: nn.Module, bwd: nn.Module | None, state_width: int, cell_width: int) -> None:
        super().__init__()
        self.fwd = fwd
        self.bidirectional = bwd is not None
        self.bwd = bwd if bwd is not None else fwd  # never called when unidirectional (TorchScript needs a module)
        self.state_width = state_width
        self.cell_width = cell_width

    def _forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
        raise NotImplementedError

    def whole(self, x: torch.Tensor) -> torch.Tensor:
        """The layer over one whole utterance (1, T, D): exactly the operations of the training layer."""
        out_f, _ = self.fwd(x)
        if not self.bidirectional:
            return out_f
        out_b, _ = self.bwd(x.flip(1))
        return torch.cat([out_f, out_b.flip(1)], dim=-1)

    def step(self, x: torch.Tensor, look_ahead: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
             need_look_ahead: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One chunk ``x`` (1, n, D) with its look-ahead (1, r, D): outputs at the chunk (final), at the
        look-ahead (provisional, for the next layer; empty unless ``need_look_ahead``), and the state at the
        chunk's end."""
        out_f, h, c = self._forward(x, h, c)
        if not self.bidirectional:
            return out_f, out_f[:, :0], h, c
        width = out_f.shape[2]
        la_f = out_f.new_zeros((1, look_ahead.shape[1], width))
        if need_look_ahead and look_ahead.shape[1] > 0:
            la_f, _, _ = self._forward(look_ahead, h, c)
        window = torch.cat([x, look_ahead], dim=1)
        out_b, _ = self.bwd(window.flip(1))
        out_b = out_b.flip(1)
        n = x.shape[1]
        y = torch.cat([out_f, out_b[:, :n]], dim=-1)
        y_la = torch.cat([la_f, out_b[:, n:]], dim=-1)
        return y, y_la, h, c


class _LSTMStreamLayer(_StreamLayer):
    def _forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
        out, state = self.fwd(x, (h, c))
        return out, state[0], state[1]


class _GRUStreamLayer(_StreamLayer):
    def _forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
        out, h = self.fwd(x, h)
        return out, h, c


def stream_layer(layer: nn.Module) -> _StreamLayer:
    """The streaming view of a trained layer (its modules shared, not copied)."""
    from lstm_asr.nn.cells import BiRNNLayer

    if not isinstance(layer, BiRNNLayer):
        raise LstmAsrError(f"streaming needs a model of cell {' or '.join(STREAMABLE_CELLS)}, not a "
                           f"{type(layer).__name__}")
    bwd = layer.bwd if layer.bidirectional else None
    if layer.cell == "gru":
        return _GRUStreamLayer(layer.fwd, bwd, layer.fwd.hidden_size, 1)
    width = getattr(layer.fwd, "proj_size", 0) or layer.fwd.hidden_size  # int8 LSTMs: no projection
    return _LSTMStreamLayer(layer.fwd, bwd, width, layer.fwd.hidden_size)


class StreamingNetwork(nn.Module):
    """A trained network on a stream of un-normalised feature frames (n, D) -> log-probs (n', C), chunk by chunk.

    ``chunk_frames`` and ``right_context`` count input feature frames (multiples of the model's frame-rate
    reduction); 0 takes the model's own (``model.chunk_frames``, ``model.right_context``), and a model trained on
    whole utterances must be given a chunk size. Call :meth:`initial_state` once per stream, :meth:`step` with
    each batch of new frames (any number, none included), and finally ``step(..., final=True)``, which
    computes the remaining frames with whatever look-ahead there is, as whole-utterance decoding does at the end.
    """

    def __init__(self, model: BLSTMCTC, chunk_frames: int = 0, right_context: int = -1) -> None:
        super().__init__()
        c = model.config
        if c.cell not in STREAMABLE_CELLS:
            raise LstmAsrError(f"streaming needs a model of cell {' or '.join(STREAMABLE_CELLS)}, not {c.cell!r}")
        chunk_frames = chunk_frames or c.chunk_frames
        right_context = c.right_context if right_context < 0 else right_context
        if not c.bidirectional:
            right_context = 0  # nothing to look ahead with
        if chunk_frames <= 0:
            raise LstmAsrError("this model was trained on whole utterances: give a chunk size to stream it "
                               "(e.g. --chunk-frames 40 --right-context 40)")
        reduction = c.subsample * 2**c.pyramid
        for name, value in (("chunk frames", chunk_frames), ("right context", right_context)):
            if value % reduction:
                raise LstmAsrError(f"{name} {value} is not a multiple of the model's frame-rate reduction "
                                   f"{reduction}")
        self.chunk_frames, self.right_context = chunk_frames, right_context
        self.normalizer = model.normalizer
        self.layers = nn.ModuleList(stream_layer(layer) for layer in model.layers)
        self.output = model.output
        self.num_classes = c.num_classes
        self.stack = c.stack_frames
        self.subsample = c.subsample
        self.pyramid = c.pyramid
        self.chunk = chunk_frames // c.subsample  # network frames at the first layer
        self.right = right_context // c.subsample
        self.input_dim = c.input_dim

    @torch.jit.export
    def initial_state(self) -> dict[str, torch.Tensor]:
        """A fresh stream: no frames buffered, zero recurrent state."""
        state: dict[str, torch.Tensor] = {
            "feats": torch.zeros(0, self.input_dim),  # normalised frames not yet stacked into network frames
            "net": torch.zeros(0, self.input_dim * self.stack),  # network frames not yet computed as chunks
        }
        for i, layer in enumerate(self.layers):
            state["h" + str(i)] = torch.zeros(1, 1, layer.state_width)
            state["c" + str(i)] = torch.zeros(1, 1, layer.cell_width)
        return state

    def _stack(self, state: dict[str, torch.Tensor], final: bool) -> torch.Tensor:
        """Network frames made complete by the buffered features: frame k stacks input frames k*s .. k*s+stack-1
        (zeros past the end once the stream is final). Consumed features leave the buffer."""
        buf = state["feats"]
        n = buf.shape[0]
        if final:
            ready = -(-n // self.subsample)
        else:
            ready = (n - self.stack) // self.subsample + 1 if n >= self.stack else 0
        if ready <= 0:
            return buf.new_zeros((0, buf.shape[1] * self.stack))
        stacked, _ = stack_frames(buf.unsqueeze(0), torch.tensor([n]), self.stack, self.subsample)
        state["feats"] = buf[ready * self.subsample:]
        return stacked[0, :ready]

    def _chunk(self, x: torch.Tensor, look_ahead: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        """All layers over one chunk (1, n, D) and its look-ahead (1, r, D); log-probs of the chunk's frames."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, look_ahead, h, c = layer.step(x, look_ahead, state["h" + str(i)], state["c" + str(i)], i < last)
            state["h" + str(i)] = h
            state["c" + str(i)] = c
            if i < self.pyramid:
                x, _ = stack_frames(x, torch.tensor([x.shape[1]]), 2, 2)
                if look_ahead.shape[1] > 0:
                    look_ahead, _ = stack_frames(look_ahead, torch.tensor([look_ahead.shape[1]]), 2, 2)
                else:
                    look_ahead = look_ahead.new_zeros((1, 0, 2 * look_ahead.shape[2]))
        return torch.log_softmax(self.output(x[0]), dim=-1)

    @torch.jit.export
    def step(self, feats: torch.Tensor, state: dict[str, torch.Tensor],
             final: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Feed new un-normalised feature frames (n, D); returns the log-probs (n', C) of every output frame that
        became final, and the new state. With ``final``, the stream ends: every remaining frame is computed."""
        state = dict(state)
        state["feats"] = torch.cat([state["feats"], self.normalizer(feats)], dim=0)
        state["net"] = torch.cat([state["net"], self._stack(state, final)], dim=0)
        outputs = [feats.new_zeros((0, self.num_classes))]
        net = state["net"]
        while net.shape[0] >= self.chunk + self.right or (final and net.shape[0] > 0):
            x = net[: self.chunk].unsqueeze(0)
            look_ahead = net[self.chunk: self.chunk + self.right].unsqueeze(0)
            outputs.append(self._chunk(x, look_ahead, state))
            net = net[self.chunk:]
        state["net"] = net
        return torch.cat(outputs, dim=0), state

    @torch.jit.export
    def lag_frames(self) -> int:
        """Input frames a chunk's first frame waits for before it is computed: the chunk, its look-ahead, and the
        frames that the stacking of the last network frame reads."""
        return self.chunk_frames + self.right_context + max(0, self.stack - self.subsample)


class StreamingPipeline(nn.Module):
    """Waveform samples in, log-probabilities out, on a stream: :class:`~lstm_asr.data.kaldi_fbank.StreamingFbank`
    then :class:`StreamingNetwork`, one state dict for both. This is what ``lstm-asr export --streaming`` writes
    (with the token list beside it) and what ``lstm-asr decode --stream`` and ``lstm-asr serve`` run."""

    def __init__(self, model: BLSTMCTC, features: FeatureConfig, chunk_frames: int = 0,
                 right_context: int = -1) -> None:
        super().__init__()
        self.features = StreamingFbank(features)
        self.network = StreamingNetwork(model, chunk_frames, right_context)
        self.sample_rate = features.sample_rate
        self.chunk_frames = self.network.chunk_frames
        self.right_context = self.network.right_context
        # Input frames a chunk needs beyond its own: look-ahead, the frames that stacking reads, the deltas'.
        self.extra_frames = self.network.lag_frames() - self.chunk_frames + 2 * features.deltas
        self.window = self.features.fbank.window_size
        self.shift = self.features.fbank.window_shift

    @torch.jit.export
    def initial_state(self) -> dict[str, torch.Tensor]:
        state = self.features.initial_state()
        for key, value in self.network.initial_state().items():
            state[key] = value
        return state

    @torch.jit.export
    def step(self, samples: torch.Tensor, state: dict[str, torch.Tensor],
             final: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Feed 1-D float samples in [-1, 1] at ``sample_rate`` (any number); returns the log-probs (n, C) of the
        output frames that became final, and the new state. ``final=True`` ends the stream."""
        feats, state = self.features.step(samples, state, final)
        return self.network.step(feats, state, final)

    @torch.jit.export
    def finish(self, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """End of the stream: the log-probs of every remaining frame."""
        return self.step(torch.zeros(0), state, True)

    @torch.jit.export
    def samples_needed(self, chunks: int) -> int:
        """Samples from the start of the stream after which the first ``chunks`` chunks can be computed: feeding
        the samples in between to :meth:`step` only buffers them (a caller may hold them back and save the calls)."""
        frames = chunks * self.chunk_frames + self.extra_frames
        return (frames - 1) * self.shift + self.window
