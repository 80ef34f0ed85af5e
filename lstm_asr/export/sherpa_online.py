"""Streaming models for sherpa-onnx's ``OnlineRecognizer``: what ``lstm-asr export --format sherpa-onnx`` writes into
``OUT_DIR/online/`` when the model can stream (unidirectional, ``model.bidirectional: false``, or latency-controlled,
``model.chunk_frames`` with ``model.right_context``).

How sherpa-onnx streams (``online-recognizer-*-impl.h``): its fbank (kaldi-native-fbank) computes frames as samples
arrive; once more than ``T`` frames past the last decoded position exist, it hands the model the next ``T`` frames
and moves on by ``chunk_shift`` frames, with the states the model returned for the stream last time (created zero,
stacked along a batch axis for several streams). So each call sees ``T - chunk_shift`` frames past the part it
decodes: that look-ahead is ours to choose. The graphs written here use it for what our front end reads ahead:

* ``2 * deltas`` frames for the deltas (Kaldi's regression over +-2 frames per order);
* ``stack_frames - subsample`` frames for the frame stacking of the chunk's last network frame;
* a latency-controlled model's ``right_context`` (its look-ahead frames through every layer, as
  :mod:`lstm_asr.nn.streaming` runs it).

What the deltas read *behind* the chunk (2 frames of every order below the highest) is carried in the state, with
the LSTM states (each layer's forward direction): a zero state is the start of a stream, where the frames behind
are the first frame repeated, as our deltas replicate the edges. The chunk shift is a multiple of the model's
frame-rate reduction, so network frames and pyramid pairs never straddle chunks. Every output frame a call gives
is then the experiment's own to float rounding (tests/test_sherpa_online.py).

Two sherpa-onnx model types carry this, chosen because their states are tensors whose content the runtime never
reads (it creates them as zeros, stacks, unstacks and hands them back):

* a **CTC model** as icefall's streaming zipformer2 CTC type (``OnlineZipformer2CtcModelConfig``,
  ``--zipformer2-ctc-model``): ``model.onnx`` with inputs ``x`` (N, T, mel bins) and the states sherpa-onnx makes
  for one "encoder stack" of ``layers`` layers of width ``hidden`` (metadata ``encoder_dims``,
  ``num_encoder_layers``, ... ``T``, ``decode_chunk_len``): each layer's two convolution caches (N, hidden, 1) carry
  its h and c, the four attention caches (shrunk to one value) pass through unused, the embedding cache (N, 128, 3,
  19) carries the frames behind and ``processed_lens`` (N,) the frames decoded so far (0: a fresh stream);
  outputs the log-probabilities (N, T', C) and the next states. (NeMo's streaming CTC type has freer state shapes,
  but sherpa-onnx 2.0.1 feeds it a NeMo-style filterbank, close to slaney mel bands and not Kaldi's: measured with
  a graph that echoes its input, which for this type and the two below gets Kaldi's frames.)
* a **transducer** with a stateless prediction network (``model.pred_context``) as icefall's LSTM transducer
  (``model_type`` ``lstm``): ``encoder.onnx`` (``x`` (N, T, mel bins), ``h`` (R, N, hidden), ``c`` (R, N, hidden)
  -> ``encoder_out`` (N, T', J), next ``h``, ``c``), where the first ``layers`` rows of ``h`` and ``c`` are the LSTM
  states and the rows after them of ``h`` hold a started flag and the frames behind (metadata ``T``,
  ``decode_chunk_len``, ``num_encoder_layers`` = R, ``rnn_hidden_size``, ``d_model``); ``decoder.onnx`` and
  ``joiner.onnx`` as for the offline model.

Both take sherpa-onnx's fbank at Kaldi's 16-bit sample scale: its ``FeatureExtractorConfig`` must say
``normalize_samples=False, snip_edges=True, high_freq=0`` (and ``feature_dim``); ``README.md`` in the folder shows
it. Not exact, and why: sherpa-onnx never decodes the frames after the last complete chunk (``T + 1`` frames must
exist past the decoded position, and ``input_finished()`` does not change that), so the last ``T - chunk_shift + 1``
to ``T`` frames of a stream give no output; a user appends ``T`` frames of silence (the folder's README.md says how
much) so that all of the audio is decoded, and then the last frames' deltas (and look-ahead) read that silence where
whole-utterance decoding replicates the last frame. Everything sherpa-onnx does decode from the audio alone is
exact. Refused (one-line errors): bidirectional whole-utterance models (offline only), utterance or speaker
normalisation (their statistics need the whole utterance), ConvLSTM, LSTM projections (ONNX's LSTM has none),
and the offline export's own limits (log energy, framing, the LSTM prediction network).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.errors import LstmAsrError
from lstm_asr.export.sherpa_export import (
    _write,
    front_end_problem,
    our_metadata,
    write_prediction_parts,
    write_tokens,
)
from lstm_asr.nn.cells import BiRNNLayer
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.stream_recognizer import DEFAULT_CHUNK_FRAMES

ZIPFORMER2_CTC = "zipformer2_ctc"
LSTM_TRANSDUCER = "lstm"


def online_problem(rec: Recognizer) -> str | None:
    """Why the experiment cannot stream in sherpa-onnx (one line), or None when it can."""
    problem = front_end_problem(rec)
    if problem is not None:
        return problem
    c = rec.model.config
    if c.bidirectional and not c.chunk_frames:
        return ("a bidirectional model reads whole utterances (its offline model is written): train with "
                "model.bidirectional: false, or latency-controlled (model.chunk_frames, model.right_context), to "
                "stream")
    if rec.features.normalize != "global":
        return (f"features.normalize: {rec.features.normalize} needs the whole utterance's statistics: streaming "
                "needs global normalisation")
    if not all(isinstance(layer, BiRNNLayer) for layer in rec.model.layers):
        return "only lstm and gru layers stream in sherpa-onnx (not ConvLSTM or LMU layers)"
    if c.projection:
        return "ONNX's LSTM operator has no projection (LSTMP)"
    if rec.transducer is not None and not c.pred_context:
        return ("sherpa-onnx's transducer decoder is stateless (the last N labels): train with model.pred_context: "
                "N instead of the LSTM prediction network")
    if rec.transducer is None and math.prod(_behind_shape(rec)) > math.prod(EMBED_STATES):
        return f"the deltas' frames behind a call do not fit the {math.prod(EMBED_STATES)} floats of its state"
    return None


def chunk_shift(rec: Recognizer, chunk_frames: int = 0) -> int:
    """Input frames each call decodes: a latency-controlled model's own chunk, else ``chunk_frames`` (default
    :data:`DEFAULT_CHUNK_FRAMES`) rounded up to a multiple of the frame-rate reduction (and at least 2, the frames
    behind that the deltas carry)."""
    c = rec.model.config
    if c.bidirectional:
        if chunk_frames and chunk_frames != c.chunk_frames:
            raise LstmAsrError(f"a latency-controlled model streams exactly with its own chunks of {c.chunk_frames} "
                               f"frames, not {chunk_frames}")
        return c.chunk_frames
    r = c.frame_reduction
    shift = -(-(chunk_frames or c.chunk_frames or DEFAULT_CHUNK_FRAMES) // r) * r
    return shift if shift >= 2 else 2 * r


class OnlineFeatures(nn.Module):
    """sherpa-onnx's fbank frames of one call (N, T, bins) -> our un-normalised features (N, T - 2 * deltas, dim).

    The deltas of order k+1 read 2 frames of order k behind the chunk; those come from ``behind`` (N, max(deltas,
    1), 2, bins), or at the start of a stream (``started`` false) are the first frame repeated, as torchaudio's
    deltas replicate the edge. Returns the features and what the next call's frames have behind them: the frames
    ``shift - 2, shift - 1`` of every order below the highest."""

    def __init__(self, features: FeatureConfig, shift: int) -> None:
        super().__init__()
        self.order = features.deltas
        self.shift = shift

    def forward(self, x: torch.Tensor, behind: torch.Tensor, started: torch.Tensor) -> tuple[torch.Tensor,
                                                                                           torch.Tensor]:
        seq, parts, carried = x, [x], []
        for k in range(self.order):
            n = seq.shape[1]
            left = torch.where(started, behind[:, k], seq[:, :1].expand(-1, 2, -1))
            carried.append(seq[:, self.shift - 2: self.shift])
            p = torch.cat([left, seq], dim=1)  # frame t of seq is p[t + 2]: the regression reads t-2 .. t+2
            # The frames whose look-ahead is in the call (the last two have none): as sherpa_export.deltas.
            seq = ((p[:, 3:n + 1] - p[:, 1:n - 1]) + 2 * (p[:, 4:n + 2] - p[:, :n - 2])) / 10
            parts.append(seq)
        frames = seq.shape[1]
        feats = torch.cat([part[:, :frames] for part in parts], dim=2)
        next_behind = torch.stack(carried, dim=1) if carried else behind
        return feats, next_behind


class OnlineEncoder(nn.Module):
    """One call of the streaming encoder, for a batch of streams: fbank frames (N, T, bins), each layer's forward
    state h, c (layers, N, hidden), the frames behind and the started flag (:class:`OnlineFeatures`) -> the top
    layer's outputs at the chunk's network frames (N, shift / reduction, width) and the next states.

    Unidirectional layers run over the chunk from the carried state. Latency-controlled layers run as
    :class:`lstm_asr.nn.streaming.StreamingNetwork` runs them (the forward direction over the chunk from the
    carried state and on into the look-ahead, not carried on; the backward direction over chunk and look-ahead
    from zero), written for a batch."""

    def __init__(self, rec: Recognizer, shift: int) -> None:
        super().__init__()
        model, f = rec.model, rec.features
        c = model.config
        self.features = OnlineFeatures(f, shift)
        self.normalizer = model.normalizer
        self.layers = nn.ModuleList(model.layers)
        self.gru = c.cell == "gru"
        self.latency_controlled = c.bidirectional
        self.stack, self.subsample, self.pyramid = c.stack_frames, c.subsample, c.pyramid
        self.chunk = shift // c.subsample  # network frames at the first layer
        self.right = (c.right_context if c.bidirectional else 0) // c.subsample
        # Frames each call reads: the chunk, its look-ahead, the stacking's, the deltas'.
        self.window = shift + self.right * c.subsample + max(0, c.stack_frames - c.subsample) + 2 * f.deltas

    def _stack(self, feats: torch.Tensor) -> torch.Tensor:
        """Network frame k = input frames k*s .. k*s + stack - 1 side by side, for the chunk and its look-ahead."""
        n, s = self.chunk + self.right, self.subsample
        return torch.cat([feats[:, j: j + (n - 1) * s + 1: s] for j in range(self.stack)], dim=2)

    def _run(self, rnn: nn.Module, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.gru:
            out, h = rnn(x, h.contiguous())
            return out, h, c
        out, (h, c) = rnn(x, (h.contiguous(), c.contiguous()))
        return out, h, c

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, behind: torch.Tensor,
                started: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats, behind = self.features(x, behind, started)
        y = self._stack(self.normalizer(feats))
        x, look_ahead = y[:, :self.chunk], y[:, self.chunk:]
        hs, cs = [], []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            out, hi, ci = self._run(layer.fwd, x, h[i:i + 1], c[i:i + 1])
            hs.append(hi)
            cs.append(ci)
            if self.latency_controlled:
                n = x.shape[1]
                window = torch.cat([x, look_ahead], dim=1) if self.right else x
                back, _ = layer.bwd(window.flip(1))
                back = back.flip(1)
                if i < last and self.right:  # the next layer reads provisional outputs at the look-ahead frames
                    ahead, _, _ = self._run(layer.fwd, look_ahead, hi, ci)
                    look_ahead = torch.cat([ahead, back[:, n:]], dim=2)
                out = torch.cat([out, back[:, :n]], dim=2)
            x = out
            if i < self.pyramid:  # frame pairs side by side (the chunk and look-ahead lengths are even)
                x = torch.cat([x[:, 0::2], x[:, 1::2]], dim=2)
                if self.latency_controlled and self.right:
                    look_ahead = torch.cat([look_ahead[:, 0::2], look_ahead[:, 1::2]], dim=2)
        return x, torch.cat(hs, dim=0), torch.cat(cs, dim=0), behind


def _behind_shape(rec: Recognizer) -> tuple[int, int, int]:
    f = rec.features
    return max(f.deltas, 1), 2, f.num_mel_bins


EMBED_STATES = (128, 3, 19)  # the shape sherpa-onnx gives a zipformer2's last state (its conv front end's cache)


class Zipformer2StreamingCtc(nn.Module):
    """The CTC model as sherpa-onnx's zipformer2 streaming CTC type, one "encoder stack" of ``layers`` layers of
    width ``hidden``: (x (N, T, bins), then six states per layer, an embedding state (N, 128, 3, 19) and the frames
    decoded so far (N,)) -> (log_probs (N, T', C), the next states in the same order). Of each layer's six states
    (whose shapes sherpa-onnx derives from the metadata) the two convolution caches (N, hidden, 1) carry its h and
    c, the four attention caches (shrunk to one frame of one dimension) pass through; the embedding state carries
    the frames behind, and the frame count says whether the stream has started."""

    def __init__(self, rec: Recognizer, shift: int) -> None:
        super().__init__()
        self.encoder = OnlineEncoder(rec, shift)
        self.output = rec.model.output
        self.layers = len(rec.model.layers)
        self.behind = _behind_shape(rec)
        self.shift = shift

    def forward(self, x: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        layer_states, embed, processed = states[:-2], states[-2], states[-1]
        h = torch.stack([layer_states[6 * i + 4][:, :, 0] for i in range(self.layers)])  # (layers, N, hidden)
        c = torch.stack([layer_states[6 * i + 5][:, :, 0] for i in range(self.layers)])
        size = math.prod(self.behind)
        behind = embed.reshape(embed.shape[0], -1)[:, :size].reshape(-1, *self.behind)
        enc, h, c, behind = self.encoder(x, h, c, behind, (processed > 0).view(-1, 1, 1))
        log_probs = torch.log_softmax(self.output(enc), dim=-1)
        out = []
        for i in range(self.layers):
            out += [s + 0 for s in layer_states[6 * i: 6 * i + 4]]  # unused: handed back as they came
            out += [h[i].unsqueeze(2), c[i].unsqueeze(2)]
        flat = nn.functional.pad(behind.reshape(-1, size), (0, math.prod(EMBED_STATES) - size))
        return (log_probs, *out, flat.reshape(-1, *EMBED_STATES), processed + self.shift)


def zipformer2_states(rec: Recognizer) -> tuple[list[str], list[torch.Tensor], list[int]]:
    """Names, zero values (a batch of one) and batch axes of :class:`Zipformer2StreamingCtc`'s states, as
    sherpa-onnx's ``OnlineZipformer2CtcModel::InitStates`` makes them from the metadata :func:`export_online`
    writes."""
    hidden = rec.model.config.hidden
    names, values, axes = [], [], []
    for i in range(len(rec.model.layers)):
        for name, shape, axis in (("cached_key", (1, 1, 1), 1), ("cached_nonlin_attn", (1, 1, 1, 3 * hidden // 4), 1),
                                  ("cached_val1", (1, 1, 1), 1), ("cached_val2", (1, 1, 1), 1),
                                  ("cached_conv1", (1, hidden, 1), 0), ("cached_conv2", (1, hidden, 1), 0)):
            names.append(f"{name}_{i}")
            values.append(torch.zeros(shape))
            axes.append(axis)
    names += ["embed_states", "processed_lens"]
    values += [torch.zeros(1, *EMBED_STATES), torch.zeros(1, dtype=torch.long)]
    axes += [0, 0]
    return names, values, axes


class LstmTransducerEncoder(nn.Module):
    """The transducer's encoder as icefall's LSTM transducer encoder: (x (N, T, bins), h (R, N, hidden), c (R, N,
    hidden)) -> (encoder_out (N, T', J), next h, next c). Rows ``layers ..`` of ``h`` carry a started flag (0 in a
    fresh stream) and the frames behind, flattened; those rows of ``c`` are unused."""

    def __init__(self, rec: Recognizer, shift: int) -> None:
        super().__init__()
        self.encoder = OnlineEncoder(rec, shift)
        self.project = rec.model.joint.encoder_proj
        self.layers = len(rec.model.layers)
        self.behind = _behind_shape(rec)
        self.hidden = rec.model.config.hidden
        self.extra_rows = extra_rows(rec)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        extra = h[self.layers:].transpose(0, 1).reshape(h.shape[1], -1)  # (N, extra rows * hidden)
        started = (extra[:, 0] > 0.5).view(-1, 1, 1)
        size = math.prod(self.behind)
        behind = extra[:, 1:1 + size].reshape(-1, *self.behind)
        enc, h_out, c_out, behind = self.encoder(x, h[:self.layers], c[:self.layers], behind, started)
        flat = torch.cat([torch.ones_like(extra[:, :1]), behind.reshape(-1, size)], dim=1)
        flat = nn.functional.pad(flat, (0, self.extra_rows * self.hidden - 1 - size))
        rows = flat.reshape(-1, self.extra_rows, self.hidden).transpose(0, 1)
        return (self.project(enc), torch.cat([h_out, rows], dim=0), torch.cat([c_out, c[self.layers:]], dim=0))


def extra_rows(rec: Recognizer) -> int:
    """Rows of ``hidden`` floats after the layers' states that hold the started flag and the frames behind."""
    return -(-(1 + math.prod(_behind_shape(rec))) // rec.model.config.hidden)


def export_online(rec: Recognizer, out_dir: str | Path, chunk_frames: int = 0) -> Path:
    """Write the streaming model of ``rec`` (checked by :func:`online_problem`) into ``out_dir``; returns it."""
    problem = online_problem(rec)
    if problem is not None:
        raise LstmAsrError(f"{rec.source}: cannot export for sherpa-onnx's online recognizer: {problem}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f, c = rec.features, rec.model.config
    shift = chunk_shift(rec, chunk_frames)
    window = OnlineEncoder(rec, shift).window
    layers = len(rec.model.layers)
    fbank = torch.zeros(1, window, f.num_mel_bins)
    ours = {**our_metadata(rec), "frame_reduction": str(c.frame_reduction)}
    batch = {0: "N"}
    with torch.no_grad():
        if rec.transducer is None:
            names, states, axes = zipformer2_states(rec)
            outputs = ["log_probs", *(n + "_next" for n in names)]
            dynamic = {"x": batch, "log_probs": batch}
            for name, axis in zip(names, axes, strict=True):
                dynamic[name] = dynamic[name + "_next"] = {axis: "N"}
            _write(Zipformer2StreamingCtc(rec, shift), (fbank, *states), out / "model.onnx", ["x", *names], outputs,
                   dynamic,
                   {"model_type": ZIPFORMER2_CTC, "T": str(window), "decode_chunk_len": str(shift),
                    "encoder_dims": str(c.hidden), "num_encoder_layers": str(layers), "query_head_dims": "1",
                    "value_head_dims": "1", "num_heads": "1", "cnn_module_kernels": "3", "left_context_len": "1",
                    "vocab_size": str(c.num_classes), "subsampling_factor": str(c.frame_reduction), **ours})
            files = "model.onnx"
        else:
            rows = layers + extra_rows(rec)
            state = torch.zeros(rows, 1, c.hidden)
            _write(LstmTransducerEncoder(rec, shift), (fbank, state, state), out / "encoder.onnx", ["x", "h", "c"],
                   ["encoder_out", "next_h", "next_c"],
                   {"x": batch, "encoder_out": batch, "h": {1: "N"}, "c": {1: "N"}, "next_h": {1: "N"},
                    "next_c": {1: "N"}},
                   {"model_type": LSTM_TRANSDUCER, "T": str(window), "decode_chunk_len": str(shift),
                    "num_encoder_layers": str(rows), "rnn_hidden_size": str(c.hidden), "d_model": str(c.hidden),
                    **ours})
            write_prediction_parts(rec, out)
            files = "encoder.onnx, decoder.onnx, joiner.onnx"
    write_tokens(rec, out)
    (out / "README.md").write_text(_note(rec, files, window, shift), encoding="utf-8")
    return out


def _note(rec: Recognizer, files: str, window: int, shift: int) -> str:
    f, c = rec.features, rec.model.config
    kind = (f"latency-controlled BLSTM: chunks of {c.chunk_frames} frames with {c.right_context} frames of "
            "look-ahead" if c.bidirectional else "unidirectional network")
    if rec.transducer is None:
        model = ("    model_config=lib.OnlineModelConfig(\n"
                 "        zipformer2_ctc=lib.OnlineZipformer2CtcModelConfig(model='model.onnx'), tokens='tokens.txt', "
                 "num_threads=1),\n")
        how = ("sherpa-onnx loads it as a streaming zipformer2 CTC model (`--zipformer2-ctc-model=model.onnx`); "
               "its states are our LSTM states and feature frames, whatever their names say.")
    else:
        model = ("    model_config=lib.OnlineModelConfig(\n"
                 "        transducer=lib.OnlineTransducerModelConfig(encoder='encoder.onnx', decoder='decoder.onnx', "
                 "joiner='joiner.onnx'),\n        tokens='tokens.txt', num_threads=1),\n")
        how = (f"sherpa-onnx loads it as an LSTM transducer (encoder `model_type` lstm) with a stateless decoder (the "
               f"last {c.pred_context} labels); its greedy search emits at most one label per encoder frame.")
    tail = window / 100
    return (
        f"Streaming model exported by lstm-asr from {rec.source} ({files}, tokens.txt): a {kind}.\n\n"
        f"{how} Each call decodes {shift} feature frames ({10 * shift} ms) and reads {window - shift} frames past "
        f"them (deltas, frame stacking, look-ahead), so a result lags the audio by {10 * window} ms plus compute.\n\n"
        f"Features: sherpa-onnx's Kaldi fbank, {f.num_mel_bins} mel bins, {f.sample_rate} Hz, 25 ms frames every "
        "10 ms, at Kaldi's 16-bit sample scale; the graph adds the deltas and normalises. sherpa-onnx's defaults "
        "differ, so give its feature extractor these settings:\n\n"
        "```python\nimport numpy as np\nimport sherpa_onnx as so\nfrom sherpa_onnx.lib import _sherpa_onnx as lib\n\n"
        "config = lib.OnlineRecognizerConfig(\n"
        f"    feat_config=so.FeatureExtractorConfig(sampling_rate={f.sample_rate}, feature_dim={f.num_mel_bins}, "
        "low_freq=20, high_freq=0, snip_edges=True, normalize_samples=False),\n"
        f"{model}"
        "    enable_endpoint=False, decoding_method='greedy_search')\n"
        "recognizer = lib.OnlineRecognizer(config)\n"
        "stream = recognizer.create_stream()\n"
        "stream.accept_waveform(16000, samples)  # float32 in [-1, 1], as it arrives\n"
        "while recognizer.is_ready(stream):\n    recognizer.decode_stream(stream)\n"
        "print(recognizer.get_result(stream).text)\n```\n\n"
        "The command-line tools (`sherpa-onnx`, `sherpa-onnx-microphone`) have no options for `snip_edges` and "
        "`normalize_samples`: use the Python, C or C++ API, where the feature extractor's settings can be given.\n\n"
        f"End of stream: sherpa-onnx decodes only complete calls ({window} frames and one more), so before "
        f"`stream.input_finished()` append {tail:.2f} s of silence (`stream.accept_waveform(16000, "
        f"np.zeros({int(tail * f.sample_rate)}, np.float32))`) or the last {10 * (window - shift + 1)}-"
        f"{10 * window} ms are not decoded. Everything decoded from the audio alone equals lstm-asr's streaming "
        "and whole-file decoding (to float rounding); the last frames before appended silence read it where "
        "whole-file decoding repeats the last frame.\n"
        f"Token times: sherpa-onnx takes every output frame for 40 ms; this model's are {10 * c.frame_reduction} "
        f"ms, so multiply its timestamps by {c.frame_reduction}/4 (and its end-pointing rules, which count trailing "
        "blank frames, by the same factor).\n")


def online_recognizer(out_dir: str | Path, threads: int = 1):
    """A sherpa-onnx ``OnlineRecognizer`` for an exported streaming folder, configured as its README.md says."""
    import onnx
    import sherpa_onnx as so
    from sherpa_onnx.lib import _sherpa_onnx as lib

    out = Path(out_dir)
    ctc = (out / "model.onnx").is_file()
    meta_path = out / ("model.onnx" if ctc else "encoder.onnx")
    meta = {p.key: p.value for p in onnx.load(str(meta_path), load_external_data=False).metadata_props}
    f = FeatureConfig(**json.loads(meta["features"]))
    feat = so.FeatureExtractorConfig(sampling_rate=f.sample_rate, feature_dim=f.num_mel_bins, low_freq=20.0,
                                     high_freq=0.0, snip_edges=True, normalize_samples=False)
    tokens = str(out / "tokens.txt")
    if ctc:
        model = lib.OnlineModelConfig(zipformer2_ctc=lib.OnlineZipformer2CtcModelConfig(model=str(meta_path)),
                                      tokens=tokens, num_threads=threads)
    else:
        model = lib.OnlineModelConfig(transducer=lib.OnlineTransducerModelConfig(
            encoder=str(out / "encoder.onnx"), decoder=str(out / "decoder.onnx"), joiner=str(out / "joiner.onnx")),
            tokens=tokens, num_threads=threads)
    config = lib.OnlineRecognizerConfig(feat_config=feat, model_config=model, enable_endpoint=False,
                                        decoding_method="greedy_search")
    return lib.OnlineRecognizer(config)


def online_transcribe(recognizer, samples, sample_rate: int, block: int = 0, tail: int = 0):
    """sherpa-onnx's streaming result (``.tokens``, ``.timestamps``, ``.text``) for one recording: ``samples``
    (float32 in [-1, 1]) fed ``block`` at a time (0: all at once), then ``tail`` samples of silence, then the end
    of input; decoded whenever a chunk is ready, as a live application does."""
    import numpy as np

    stream = recognizer.create_stream()
    step = block or max(1, len(samples))
    pieces = [samples[i:i + step] for i in range(0, len(samples), step)]
    if tail:
        pieces.append(np.zeros(tail, dtype=np.float32))
    for piece in pieces:
        stream.accept_waveform(sample_rate, np.ascontiguousarray(piece, dtype=np.float32))
        while recognizer.is_ready(stream):
            recognizer.decode_stream(stream)
    stream.input_finished()
    while recognizer.is_ready(stream):
        recognizer.decode_stream(stream)
    return recognizer.get_result(stream)
