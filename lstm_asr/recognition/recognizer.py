"""Decoding audio files with a trained model: load, resample, featurise, run the network, search.

``Recognizer.load(EXP_OR_CHECKPOINT)`` accepts an experiment folder (its ``best.pt``) or a checkpoint file.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from data_prep.corpora import resolve_units
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.ink_features import InkFeatureConfig
from lstm_asr.decoding.ctc_decode import Hypothesis, greedy_decode, prefix_beam_search
from lstm_asr.decoding.model_search import searcher_for
from lstm_asr.decoding.search import Result, SearchConfig, Searcher
from lstm_asr.decoding.transducer_search import TransducerParts, TransducerSearcher
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.nn.model import BLSTMEncoder, ModelConfig
from lstm_asr.nn.networks import is_transducer, network_for
from lstm_asr.recognition.long_decode import DEFAULT_WINDOW, WindowConfig, is_long, windowed_log_probs


@dataclass
class Transcript:
    path: str
    tokens: list[str]
    times: list[tuple[float, float]]  # per token: (start, end) in seconds, from the frames where it was emitted
    score: float
    duration: float  # seconds of audio
    units: str = "phones"  # "chars" / "bpe": the text is words, glued back from the tokens

    @property
    def text(self) -> str:
        from data_prep.units import tokens_to_words

        return " ".join(tokens_to_words(self.tokens, self.units))

    def to_dict(self, with_times: bool = True) -> dict:
        d = {"file": self.path, "text": self.text, "score": round(self.score, 4), "duration": round(self.duration, 3)}
        if with_times:
            d["tokens"] = [{"token": t, "start": round(s, 3), "end": round(e, 3)}
                           for t, (s, e) in zip(self.tokens, self.times, strict=True)]
        return d


def find_latest_experiment(root: Path = Path("exp")) -> Path:
    """The most recently written experiment (a folder with ``best.pt``) under ``root``."""
    found = sorted(root.glob("**/best.pt"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not found:
        raise LstmAsrError(f"{root}: no trained experiment found (train one, or pass --model EXP)")
    return found[-1].parent


class Recognizer:
    """A trained model with its feature settings and token list, ready to decode audio.

    The model's outputs are log-probabilities (T, C) for a CTC model and the encoder frames projected for the joint
    network (T, J) for a transducer (:attr:`transducer` then holds the prediction and joint networks the search
    drives); :meth:`searcher` gives the search that reads them.
    """

    model: BLSTMEncoder | None  # None for an exported file (ScriptedRecognizer, OnnxRecognizer run it themselves)
    source: str = ""  # the file it was loaded from (for messages)

    def __init__(self, model: BLSTMEncoder | None, features: FeatureConfig | InkFeatureConfig, tokens: list[str],
                 corpus_type: str, units: str = "phones", source: str = "") -> None:
        self.model = model.eval() if model is not None else None
        self.features = features
        self.tokens = tokens
        self.corpus_type = corpus_type
        self.units = units  # output units: "phones", "chars" or "bpe" (decides how tokens become text)
        self.source = source
        # Pen strokes or audio in: the checkpoint's feature settings say which.
        self.input_type = "ink" if isinstance(features, InkFeatureConfig) else "audio"

    @property
    def transducer(self) -> TransducerParts | None:
        """The prediction and joint networks of a transducer model (None for a CTC model)."""
        return self.model if is_transducer(self.model) else None

    def searcher(self, config: SearchConfig) -> Searcher | TransducerSearcher:
        """The search for this model's outputs (an LM with a transducer model is a one-line error)."""
        return searcher_for(self.transducer, self.tokens, config, self.source)

    def require_ctc(self, tool: str) -> None:
        """One-line error for a tool that works on CTC outputs only, given a transducer model."""
        if self.transducer is not None:
            raise LstmAsrError(f"{self.source}: a transducer model (model.head: transducer); {tool} needs a CTC "
                               "model (model.head: ctc)")

    @classmethod
    def load(cls, path: str | Path) -> Recognizer:
        path = Path(path)
        ckpt_path = path / "best.pt" if path.is_dir() else path
        if is_torchscript(ckpt_path):  # a file written by ``lstm-asr export``
            return ScriptedRecognizer.load_file(ckpt_path)
        if is_onnx(ckpt_path):  # ``lstm-asr export --format onnx``: the network in ONNX Runtime
            return OnnxRecognizer.load_file(ckpt_path)
        ckpt = load_checkpoint(ckpt_path)
        try:
            model = network_for(ModelConfig(**ckpt["model_config"]))
            model.load_state_dict(ckpt["state_dict"])
            feats = ckpt["features"]
            if feats.get("type") == "ink":  # handwriting: pen strokes in (lstm_asr/recognition/ink_decode.py)
                features = InkFeatureConfig.from_dict(feats)
            else:
                features = FeatureConfig(**feats)
            tokens = list(ckpt["tokens"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise LstmAsrError(f"{ckpt_path}: checkpoint does not match this version of lstm-asr ({exc})") from None
        corpus = (ckpt.get("recipe") or {}).get("corpus") or {}
        units = resolve_units(ckpt.get("corpus_type", ""), corpus.get("units") or "")
        return cls(model, features, tokens, ckpt.get("corpus_type", ""), units, str(ckpt_path))

    @property
    def frame_reduction(self) -> int:
        """Input frames per output frame of the model."""
        return self.model.frame_reduction if self.model is not None else 1

    def quantize(self, kind: str) -> Recognizer:
        """Use an int8 copy of the network (``kind="int8"``; ``""`` keeps float32): lstm_asr/nn/quantize.py."""
        from lstm_asr.nn.quantize import quantized

        if kind:
            if self.model is None:
                raise LstmAsrError("--quantize applies to an experiment; an exported file is quantized when "
                                   "exported (lstm-asr export --quantize int8)")
            self.model = quantized(self.model, kind)
        return self

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame: the feature frame shift times the model's frame-rate reduction."""
        if self.model is None:  # an exported CTC file knows its output frame shift
            return float(getattr(self.scripted, "frame_seconds",
                                 self.features.frame_shift_ms / 1000 * self.frame_reduction))
        return self.features.frame_shift_ms / 1000 * self.frame_reduction

    @torch.inference_mode()
    def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        """The network's outputs for a 1-D waveform at the model's sample rate: log-probabilities (T, C), or a
        transducer's encoder frames (T, J)."""
        feats = compute_features(waveform, self.features)
        return self.model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]

    @torch.inference_mode()
    def ink_log_probs(self, ink, feats: torch.Tensor) -> torch.Tensor:
        """The network's outputs for one handwritten line: its pen strokes (``Ink``) and their features (T, D) as
        :func:`~lstm_asr.data.ink_features.featurize_ink` computes them (an exported file reads the one it needs)."""
        return self.model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]

    def search_one(self, outputs: torch.Tensor, beam: int = 1, token_top_k: int = 0) -> Hypothesis | Result:
        """The best hypothesis for one utterance's outputs (T, C) or, for a transducer, encoder frames (T, J)."""
        if self.transducer is not None:
            search = TransducerSearcher(self.transducer, SearchConfig(beam=beam))
            return search(outputs.unsqueeze(0), torch.tensor([outputs.shape[0]]))[0][0]
        if beam <= 1:
            return greedy_decode(outputs.unsqueeze(0), torch.tensor([outputs.shape[0]]))[0]
        return prefix_beam_search(outputs, beam=beam, token_top_k=token_top_k or None)[0]

    def transcribe(self, path: str | Path, beam: int = 1, token_top_k: int = 0,
                   window: WindowConfig | None = DEFAULT_WINDOW) -> Transcript:
        """Decode one file of any format soundfile reads (resampled, downmixed).

        A recording longer than ``window`` (with its two contexts) is decoded window by window in bounded memory
        (:mod:`lstm_asr.recognition.long_decode`); ``window=None`` always decodes the file whole.
        """
        from data_prep.audio import load_audio

        if self.model is not None and is_long(path, self.features, self.model.frame_reduction, window):
            lp, duration = windowed_log_probs(self.model, self.features, path, window)
        else:
            wav = load_audio(path, self.features.sample_rate)
            lp, duration = self.log_probs(wav), wav.numel() / self.features.sample_rate
        hyp = self.search_one(lp, beam, token_top_k)
        shift = self.frame_seconds
        frames = list(hyp.frames) if hyp.frames else [0] * len(hyp.tokens)
        ends = frames[1:] + [lp.shape[0]] if frames else []  # no tokens: no times (zip would refuse [T])
        # A token spans from the frame it is first emitted to the next token's frame (CTC spikes carry no
        # duration; this is the usual convention for token times from CTC output).
        times = [(f * shift, e * shift) for f, e in zip(frames, ends, strict=True)]
        return Transcript(str(path), [self.tokens[i] for i in hyp.tokens], times, float(hyp.score), duration,
                          self.units)


def is_torchscript(path: str | Path) -> bool:
    """True for a TorchScript archive (a zip with compiled code), False for an lstm-asr checkpoint."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.split("/", 1)[-1].startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class ScriptedRecognizer(Recognizer):
    """A :class:`Recognizer` over an exported TorchScript file (no experiment folder, no recipe needed).

    The module takes a waveform, not padded feature batches, so it is kept as ``scripted`` and ``model`` is None:
    batch decoders (``batch_decode.decode_files``) then call :meth:`log_probs` per file. An exported transducer
    (``head == "transducer"``) gives its encoder frames there, and its ``initial_state``/``predict``/``join``
    methods are what the transducer searches drive.
    """

    def __init__(self, module: torch.jit.ScriptModule, features: FeatureConfig | InkFeatureConfig,
                 tokens: list[str], corpus_type: str, units: str, source: str = "") -> None:
        super().__init__(None, features, tokens, corpus_type, units, source)
        self.scripted = module.eval()
        # Attributes of transducer exports (older and CTC exports have neither).
        self.is_scripted_transducer = str(getattr(module, "head", "ctc")) == "transducer"
        self.reduction = int(getattr(module, "frame_reduction", 1))

    @property
    def transducer(self) -> TransducerParts | None:
        return self.scripted if self.is_scripted_transducer else None  # type: ignore[return-value]

    @property
    def frame_reduction(self) -> int:
        return self.reduction

    @classmethod
    def load_file(cls, path: str | Path) -> ScriptedRecognizer:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = torch.jit.load(str(path), map_location="cpu")
            feats = json.loads(module.feature_config)
            features = InkFeatureConfig.from_dict(feats) if feats.get("type") == "ink" else FeatureConfig(**feats)
            tokens, units, corpus_type = list(module.tokens), str(module.units), str(module.corpus_type)
        except (RuntimeError, AttributeError, ValueError) as exc:
            raise LstmAsrError(f"{path}: not an lstm-asr export ({str(exc).splitlines()[0][:120]})") from None
        return cls(module, features, tokens, corpus_type, units, str(path))

    @torch.inference_mode()
    def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        try:
            if self.is_scripted_transducer:
                return self.scripted.encode(waveform)
            return self.scripted(waveform)
        except RuntimeError as exc:  # a scripted ``raise`` arrives as a RuntimeError
            raise LstmAsrError(f"cannot decode: {str(exc).strip().splitlines()[-1][:160]}") from None

    @torch.inference_mode()
    def ink_log_probs(self, ink, feats: torch.Tensor) -> torch.Tensor:
        """Strokes in: the file has its own ink normalisation inside."""
        try:
            return self.scripted([torch.from_numpy(np.asarray(s, dtype=np.float64)) for s in ink.strokes])
        except RuntimeError as exc:  # a scripted ``raise`` arrives as a RuntimeError
            raise LstmAsrError(str(exc).strip().splitlines()[-1][:160]) from None


def is_onnx(path: str | Path) -> bool:
    """True for an ONNX file (by its name: a protobuf has no magic number to read)."""
    return Path(path).suffix.lower() == ".onnx" and Path(path).is_file()


def features_from_metadata(text: str) -> FeatureConfig | InkFeatureConfig:
    """The feature settings an ONNX file's ``features`` metadata describes (its ``kind`` note left out)."""
    d = {k: v for k, v in json.loads(text).items() if k != "kind"}
    if d.get("type") == "ink":
        return InkFeatureConfig.from_dict(d)
    return FeatureConfig(**{k: v for k, v in d.items() if k in FeatureConfig.__dataclass_fields__})


def onnx_session(path: str | Path, threads: int = 0):
    """An ONNX Runtime inference session on the CPU (``threads`` 0: torch's thread count, so ``--threads`` and the
    benchmarks' settings hold for both runtimes)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise LstmAsrError(f"{path}: an ONNX model needs the onnxruntime package (pip install 'lstm-asr[onnx]')"
                           ) from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf classes
        raise LstmAsrError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:160]})") from None


class OnnxRecognizer(Recognizer):
    """A :class:`Recognizer` over an ONNX file from ``lstm-asr export --format onnx``: the project's own front end
    (the file's ``features`` metadata: :class:`FeatureConfig` or :class:`InkFeatureConfig` fields), the network in
    ONNX Runtime (the optional ``onnxruntime`` package: ``pip install 'lstm-asr[onnx]'``); metadata also gives the
    token list, unit type, corpus type and frame-rate reduction. It decodes what the experiment it came from decodes.

    Like :class:`~lstm_asr.recognition.recognizer.ScriptedRecognizer` it has no ``model`` (batch decoders call
    :meth:`log_probs` per file); a CTC network only (transducers export to ONNX through ``--format sherpa-onnx``).
    """

    def __init__(self, session, features: FeatureConfig | InkFeatureConfig, tokens: list[str], corpus_type: str,
                 units: str, frame_reduction: int, source: str = "") -> None:
        super().__init__(None, features, tokens, corpus_type, units, source)
        self.session = session
        self.reduction = frame_reduction
        self.input_name = session.get_inputs()[0].name

    @classmethod
    def load_file(cls, path: str | Path) -> OnnxRecognizer:
        session = onnx_session(path)
        meta = session.get_modelmeta().custom_metadata_map
        try:
            features = features_from_metadata(meta["features"])
            tokens = list(json.loads(meta["tokens"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LstmAsrError(f"{path}: not an lstm-asr ONNX export (metadata: {exc})") from None
        if meta.get("head", "ctc") != "ctc":
            raise LstmAsrError(f"{path}: a {meta['head']} network; decode the experiment or its TorchScript export")
        return cls(session, features, tokens, meta.get("corpus_type", ""), meta.get("units", "phones"),
                   int(meta.get("frame_reduction", 1)), str(path))

    @property
    def transducer(self) -> TransducerParts | None:
        return None

    @property
    def frame_reduction(self) -> int:
        return self.reduction

    @property
    def frame_seconds(self) -> float:
        return self.features.frame_shift_ms / 1000 * self.reduction

    def network(self, feats: torch.Tensor) -> torch.Tensor:
        """The network on one utterance's features (T, D): log-probabilities (T', C)."""
        x = np.ascontiguousarray(feats.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: x})[0])

    def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.network(compute_features(waveform, self.features))

    def ink_log_probs(self, ink, feats: torch.Tensor) -> torch.Tensor:
        return self.network(feats)
