"""``lstm-asr export EXP --format sherpa-onnx OUT_DIR``: what sherpa-onnx's offline recognisers load.

sherpa-onnx (the runtime of the next-generation Kaldi models: phones, Raspberry Pi, WebAssembly, servers) computes
the Kaldi fbank itself (kaldi-native-fbank: povey window, pre-emphasis 0.97, DC removal, no energy, no deltas) and
runs ONNX models with its own CTC or transducer greedy search. The exported graphs take that fbank and do the rest
of our front end inside (deltas, and the network's own normalisation and frame stacking), so the log-probabilities
are the experiment's to float rounding (tests/test_sherpa_export.py decodes with the sherpa-onnx package and
compares with ``lstm-asr decode``). Written into OUT_DIR:

* a **CTC model**: ``model.onnx``, loaded as sherpa-onnx's FireRedASR CTC type (``model_type`` metadata
  ``fire-red-asr-2-ctc``; ``--fire-red-asr-ctc-model`` / ``OfflineFireRedAsrCtcModelConfig``), the one CTC type
  whose front end is ours: samples scaled to 16-bit, ``snip_edges`` framing, mel bins up to Nyquist
  (``high_freq 0``), set by sherpa-onnx itself. Its CMVN metadata (``cmvn_mean``, ``cmvn_inv_stddev``) is the
  identity: the graph normalises. Inputs ``x`` (1, T, mel bins) and ``x_lens``; outputs ``log_probs`` (1, T', C)
  and ``log_probs_len``; ``subsampling_factor`` = the model's frame-rate reduction (token times).
* a **transducer** with a stateless prediction network (``model.pred_context: N``): ``encoder.onnx`` (``x``,
  ``x_lens`` -> ``encoder_out`` (1, T', J), ``encoder_out_lens``), ``decoder.onnx`` (``y`` (N, context) label ids,
  -1 before the start symbol -> ``decoder_out`` (N, J); metadata ``context_size``, ``vocab_size``) and
  ``joiner.onnx`` (``encoder_out``, ``decoder_out`` -> ``logit``). sherpa-onnx's offline transducer front end
  keeps its own defaults unless told: ``high_freq=0`` and ``snip_edges=True`` (and ``feature_dim``) must be set in
  its ``FeatureExtractorConfig`` for our features (its samples in [-1, 1] are accounted for inside the graph).
* ``tokens.txt`` (``<token> <id>``; ``<blank>`` is 0; phones and the word separator ``|`` get sherpa-onnx's
  word-start mark ``▁``, so its text has the spaces ours has), and ``README.md``: the feature settings and how to
  run it.

Limits (one-line errors): features with log energy (``features.use_energy: true``, the Graves 2013 default) cannot
be computed from sherpa-onnx's fbank, which has no energy term: train with ``use_energy: false``; the frame must
be 25 ms / 10 ms without dither; the cells and layers ONNX takes (:func:`~lstm_asr.export.onnx_export.onnx_problem`);
an LSTM prediction network has a state sherpa-onnx's decoder does not carry. Graphs run one utterance at a time
(sherpa-onnx's ``decode_stream``; a batch of several streams is refused by the graph's shape check).

Streaming models (sherpa-onnx's ``OnlineRecognizer``) are :mod:`lstm_asr.export.sherpa_online`'s;
``lstm-asr export --format sherpa-onnx`` writes both (:mod:`lstm_asr.export.sherpa_folder`).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.export.onnx_export import experiment_to_onnx, onnx_problem
from lstm_asr.export.torchscript import SingleUtteranceEncoder, SingleUtteranceNetwork
from lstm_asr.recognition.recognizer import Recognizer

WORD_START = "\u2581"  # sentencepiece's word-start mark: sherpa-onnx turns it into a space in its text
LOG_32768_SQUARED = 2 * math.log(32768.0)  # log mel of samples in [-1, 1] vs Kaldi's 16-bit scale (power spectrum)
CTC_MODEL_TYPE = "fire-red-asr-2-ctc"


def front_end_problem(rec: Recognizer) -> str | None:
    """Why sherpa-onnx's fbank cannot feed the experiment's network (one line), or None when it can: the offline
    and the online (:mod:`lstm_asr.export.sherpa_online`) models share it."""
    f = rec.features
    if not isinstance(f, FeatureConfig):
        return "a handwriting model: sherpa-onnx reads audio"
    if f.use_energy:
        return ("its features include log energy (features.use_energy: true), which sherpa-onnx's fbank does not "
                "compute: train with features.use_energy: false")
    if (f.frame_length_ms, f.frame_shift_ms) != (25.0, 10.0) or f.dither:
        return "sherpa-onnx frames 25 ms every 10 ms without dither; this model's features differ"
    return None


def sherpa_problem(rec: Recognizer) -> str | None:
    """Why the experiment cannot go to sherpa-onnx's offline recognizer (one line), or None when it can."""
    problem = front_end_problem(rec)
    if problem is not None:
        return problem
    if rec.features.normalize != "global":  # the graphs normalise with the model's training statistics only
        return (f"features.normalize: {rec.features.normalize} is not in the exported graph: train with global "
                "normalisation")
    problem = onnx_problem(rec.model)
    if problem is not None:
        return problem
    if rec.transducer is not None and not rec.model.config.pred_context:
        return ("sherpa-onnx's transducer decoder is stateless (the last N labels): train with model.pred_context: "
                "N instead of the LSTM prediction network")
    return None


def deltas(feats: torch.Tensor) -> torch.Tensor:
    """Kaldi/HTK regression deltas over +-2 frames of (T, d) features, edges replicated: what
    ``torchaudio.functional.compute_deltas(win_length=5)`` computes, in operators ONNX export takes (slices of the
    padded frames instead of a grouped convolution, whose kernel shape the trace does not know)."""
    x = nn.functional.pad(feats.T.unsqueeze(0), (2, 2), mode="replicate")[0]  # (d, T + 4)
    return ((x[:, 3:-1] - x[:, 1:-3]) + 2 * (x[:, 4:] - x[:, :-4])).T / 10


class _FromSherpaFbank(nn.Module):
    """sherpa-onnx's fbank (1, T, bins) -> our un-normalised features (T, bins * (deltas + 1))."""

    def __init__(self, features: FeatureConfig, offset: float) -> None:
        super().__init__()
        self.order = features.deltas
        self.offset = offset
        self.bins = features.num_mel_bins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cur = x.reshape(x.shape[1], self.bins) + self.offset  # one utterance: a batch of several fails this reshape
        parts = [cur]
        for _ in range(self.order):
            cur = deltas(cur)
            parts.append(cur)
        return torch.cat(parts, dim=1)


def _lengths(frames: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
    """(1,) int64 number of rows of ``frames`` (T', ...), computed in the graph. ``x_lens`` (one utterance: all its
    frames) is read too, so that the graph keeps the input sherpa-onnx passes (an unused input would be dropped)."""
    return torch.ones_like(frames[:, 0], dtype=torch.long).sum(0, keepdim=True) + 0 * x_lens


class SherpaCtc(nn.Module):
    """fbank (1, T, bins), lengths (1,) -> log-probs (1, T', C), lengths (1,)."""

    def __init__(self, rec: Recognizer) -> None:
        super().__init__()
        self.features = _FromSherpaFbank(rec.features, 0.0)  # the FireRedASR type scales samples as Kaldi does
        self.network = SingleUtteranceNetwork(rec.model)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = self.network(self.features(x))
        return log_probs.unsqueeze(0), _lengths(log_probs, x_lens)


class SherpaEncoder(nn.Module):
    """fbank (1, T, bins), lengths -> encoder frames projected for the joint network (1, T', J), lengths."""

    def __init__(self, rec: Recognizer) -> None:
        super().__init__()
        self.features = _FromSherpaFbank(rec.features, LOG_32768_SQUARED)  # its samples are in [-1, 1]
        self.encoder = SingleUtteranceEncoder(rec.model)
        self.project = rec.model.joint.encoder_proj

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.project(self.encoder(self.features(x)))
        return enc, _lengths(enc[0], x_lens)


class SherpaDecoder(nn.Module):
    """The stateless prediction network: the last ``context`` labels (N, context) -> projected vectors (N, J)."""

    def __init__(self, rec: Recognizer) -> None:
        super().__init__()
        self.predictor = rec.model.predictor
        self.pred_proj = rec.model.joint.pred_proj

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.pred_proj(self.predictor.embed_contexts(y))


class SherpaJoiner(nn.Module):
    def __init__(self, rec: Recognizer) -> None:
        super().__init__()
        self.output = rec.model.joint.output

    def forward(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor) -> torch.Tensor:
        return self.output(torch.tanh(encoder_out + decoder_out))


def sherpa_tokens(tokens: list[str], units: str) -> list[str]:
    """Our tokens as sherpa-onnx's symbol table: the word separator and every phone start a word (``▁``)."""
    out = []
    for i, t in enumerate(tokens):
        if i == 0:
            out.append("<blank>")
        elif units == "phones" or t == "|":
            out.append(WORD_START + ("" if t == "|" else t))
        else:
            out.append(t.replace(" ", WORD_START))
    return out


def _write(module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
           dynamic: dict, meta: dict[str, str]) -> None:
    import onnx

    with warnings.catch_warnings():  # trace warnings about Python values of shapes (one utterance: they hold)
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, dynamo=False)
    proto = onnx.load(str(path))
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(path))


def our_metadata(rec: Recognizer) -> dict[str, str]:
    """lstm-asr's own metadata on every graph it writes for sherpa-onnx: tokens, units, corpus type, front end."""
    return {"tokens": json.dumps(rec.tokens), "units": rec.units, "corpus_type": rec.corpus_type,
            "features": json.dumps(rec.features.to_dict()), "producer": "lstm-asr"}


def write_prediction_parts(rec: Recognizer, out: Path) -> None:
    """A transducer's stateless prediction network and joiner as sherpa-onnx's ``decoder.onnx`` and ``joiner.onnx``
    (the same files for the offline and the online recognizer)."""
    c = rec.model.config
    context = torch.full((1, c.pred_context), -1, dtype=torch.long)
    _write(SherpaDecoder(rec), (context,), out / "decoder.onnx", ["y"], ["decoder_out"],
           {"y": {0: "N"}, "decoder_out": {0: "N"}},
           {"context_size": str(c.pred_context), "vocab_size": str(c.num_classes)})
    joint = torch.zeros(1, c.joint_dim)
    _write(SherpaJoiner(rec), (joint, joint), out / "joiner.onnx", ["encoder_out", "decoder_out"], ["logit"],
           {"encoder_out": {0: "N"}, "decoder_out": {0: "N"}, "logit": {0: "N"}}, {})


def write_tokens(rec: Recognizer, out: Path) -> None:
    """sherpa-onnx's ``tokens.txt``: one ``symbol id`` line per output, in the model's order."""
    symbols = sherpa_tokens(rec.tokens, rec.units)
    (out / "tokens.txt").write_text("".join(f"{s} {i}\n" for i, s in enumerate(symbols)), encoding="utf-8")


def export_sherpa(exp: str | Path, out_dir: str | Path) -> Path:
    """Write the experiment's best model for sherpa-onnx's offline recognizer into ``out_dir``; returns ``out_dir``.
    (``lstm-asr export --format sherpa-onnx`` adds the streaming model: :mod:`lstm_asr.export.sherpa_folder`.)"""
    rec = experiment_to_onnx(exp, "sherpa-onnx", "sherpa", "for sherpa-onnx", sherpa_problem)
    return write_offline(rec, out_dir)


def write_offline(rec: Recognizer, out_dir: str | Path, postscript: str = "") -> Path:
    """Write ``rec`` (checked by :func:`sherpa_problem`) for sherpa-onnx's offline recognizer into ``out_dir``, with
    ``postscript`` at the end of its README.md; returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    f, c = rec.features, rec.model.config
    fbank = torch.zeros(1, 50, f.num_mel_bins)
    lens = torch.tensor([50], dtype=torch.long)
    frames = {"x": {1: "T"}}
    ours = our_metadata(rec)
    with torch.no_grad():
        if rec.transducer is None:
            _write(SherpaCtc(rec), (fbank, lens), out / "model.onnx", ["x", "x_lens"], ["log_probs", "log_probs_len"],
                   {**frames, "log_probs": {1: "T_out"}},
                   {"model_type": CTC_MODEL_TYPE, "vocab_size": str(c.num_classes),
                    "subsampling_factor": str(rec.model.frame_reduction),
                    "cmvn_mean": ",".join(["0"] * f.num_mel_bins), "cmvn_inv_stddev": ",".join(["1"] * f.num_mel_bins),
                    **ours})
            files = "model.onnx"
        else:
            _write(SherpaEncoder(rec), (fbank, lens), out / "encoder.onnx", ["x", "x_lens"],
                   ["encoder_out", "encoder_out_lens"], {**frames, "encoder_out": {1: "T_out"}},
                   {"model_type": "lstm-asr-transducer", "subsampling_factor": str(rec.model.frame_reduction),
                    **ours})
            write_prediction_parts(rec, out)
            files = "encoder.onnx, decoder.onnx, joiner.onnx"
    write_tokens(rec, out)
    (out / "README.md").write_text(_note(rec, files) + postscript, encoding="utf-8")
    return out


def _note(rec: Recognizer, files: str) -> str:
    f = rec.features
    common = (f"Exported by lstm-asr from {rec.source} ({files}, tokens.txt).\n\n"
              f"Features: sherpa-onnx's Kaldi fbank, {f.num_mel_bins} mel bins, {f.sample_rate} Hz, 25 ms frames "
              f"every 10 ms, no energy, no dither; the graph adds {f.deltas} order(s) of deltas and normalises as "
              "training did.\nDecode one stream at a time (`recognizer.decode_stream(s)`); the graphs take a batch "
              "of one.\n\n")
    if rec.transducer is None:
        return common + (
            "sherpa-onnx loads it as a FireRedASR CTC model (it sets the Kaldi framing and sample scale ours "
            "uses); give it the number of mel bins:\n\n"
            "```python\nimport sherpa_onnx as so\n"
            "from sherpa_onnx.lib._sherpa_onnx import OfflineFireRedAsrCtcModelConfig, OfflineRecognizer\n\n"
            "config = so.OfflineRecognizerConfig(\n"
            f"    feat_config=so.FeatureExtractorConfig(sampling_rate={f.sample_rate}, "
            f"feature_dim={f.num_mel_bins}),\n"
            "    model_config=so.OfflineModelConfig(\n"
            "        fire_red_asr_ctc=OfflineFireRedAsrCtcModelConfig(model='model.onnx'), tokens='tokens.txt'))\n"
            "recognizer = OfflineRecognizer(config)  # create_stream(), decode_stream(s), s.result.text\n"
            "```\n\nWith 80 mel bins `so.OfflineRecognizer.from_fire_red_asr_ctc('model.onnx', 'tokens.txt')` is "
            "all it takes.\n\nCommand line: `sherpa-onnx-offline --fire-red-asr-ctc-model=model.onnx "
            f"--tokens=tokens.txt --feat-dim={f.num_mel_bins} FILE.wav`\n")
    return common + (
        f"A transducer with a stateless prediction network (the last {rec.model.config.pred_context} labels). "
        "sherpa-onnx's transducer front end must be told our framing and mel range (`snip_edges=True`, "
        "`high_freq=0`):\n\n"
        "```python\nimport sherpa_onnx as so\n"
        "config = so.OfflineRecognizerConfig(\n"
        f"    feat_config=so.FeatureExtractorConfig(sampling_rate={f.sample_rate}, feature_dim={f.num_mel_bins}, "
        "low_freq=20, high_freq=0, snip_edges=True),\n"
        "    model_config=so.OfflineModelConfig(transducer=so.OfflineTransducerModelConfig(\n"
        "        encoder_filename='encoder.onnx', decoder_filename='decoder.onnx', joiner_filename='joiner.onnx'),\n"
        "        tokens='tokens.txt', model_type='transducer'))\n"
        "recognizer = so.lib._sherpa_onnx.OfflineRecognizer(config)\n"
        "```\n\nsherpa-onnx's greedy search emits at most one label per encoder frame (lstm-asr's: "
        "`decoding.max_symbols`); the command line (`sherpa-onnx-offline --model-type=transducer --encoder=... "
        f"--feat-dim={f.num_mel_bins} --high-freq=0`) has no option for `snip_edges`, so its frames are centred "
        "differently (7.5 ms later, reflected at the edges): close to, not exactly, the training features.\n"
        "Token times: sherpa-onnx's offline transducer takes every encoder frame for 40 ms (a frame-rate reduction "
        f"of 4); this model's encoder frames are {10 * rec.model.frame_reduction} ms, so multiply its timestamps by "
        f"{rec.model.frame_reduction}/4.\n")


def sherpa_recognizer(out_dir: str | Path, threads: int = 1):
    """A sherpa-onnx ``OfflineRecognizer`` for an exported folder, configured as its README.md says."""
    import sherpa_onnx as so
    from sherpa_onnx.lib._sherpa_onnx import OfflineFireRedAsrCtcModelConfig
    from sherpa_onnx.lib._sherpa_onnx import OfflineRecognizer as _Recognizer

    out = Path(out_dir)
    meta_path = out / ("model.onnx" if (out / "model.onnx").is_file() else "encoder.onnx")
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(meta_path), load_external_data=False).metadata_props}
    f = FeatureConfig(**json.loads(meta["features"]))
    tokens = str(out / "tokens.txt")
    if meta_path.name == "model.onnx":
        feat = so.FeatureExtractorConfig(sampling_rate=f.sample_rate, feature_dim=f.num_mel_bins)
        model = so.OfflineModelConfig(fire_red_asr_ctc=OfflineFireRedAsrCtcModelConfig(model=str(meta_path)),
                                      tokens=tokens, num_threads=threads)
    else:
        feat = so.FeatureExtractorConfig(sampling_rate=f.sample_rate, feature_dim=f.num_mel_bins, low_freq=20.0,
                                         high_freq=0.0, snip_edges=True)
        model = so.OfflineModelConfig(transducer=so.OfflineTransducerModelConfig(
            encoder_filename=str(out / "encoder.onnx"), decoder_filename=str(out / "decoder.onnx"),
            joiner_filename=str(out / "joiner.onnx")), tokens=tokens, num_threads=threads, model_type="transducer")
    config = so.OfflineRecognizerConfig(feat_config=feat, model_config=model, decoding_method="greedy_search")
    recognizer = so.OfflineRecognizer.__new__(so.OfflineRecognizer)
    recognizer.recognizer = _Recognizer(config)
    recognizer.config = config
    return recognizer


def sherpa_transcribe(recognizer, wav: str | Path):
    """sherpa-onnx's result for one file (``.text``, ``.tokens``, ``.timestamps``)."""
    import soundfile as sf

    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    stream = recognizer.create_stream()
    stream.accept_waveform(rate, audio[:, 0])
    recognizer.decode_stream(stream)
    return stream.result
