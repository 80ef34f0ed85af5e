"""A :class:`~lstm_asr.recognition.recognizer.Recognizer` over an ONNX file from ``lstm-asr export --format onnx``.

The file holds the network alone (features (frames, dim) in, log-probabilities (frames', classes) out, one
utterance); its metadata says which features it reads (``features``: the :class:`FeatureConfig` or
:class:`InkFeatureConfig` fields), its token list, unit type, corpus type and frame-rate reduction. The features are
computed by the project's own front end (:func:`lstm_asr.data.features.compute_features`, or the ink features) and
the network runs in ONNX Runtime (the optional ``onnxruntime`` package: ``pip install 'lstm-asr[onnx]'``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.ink_features import InkFeatureConfig
from lstm_asr.decoding.transducer_search import TransducerParts
from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.recognizer import Recognizer


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
    """The project's front end, the network in ONNX Runtime: decodes what the experiment it came from decodes.

    Like :class:`~lstm_asr.recognition.recognizer.ScriptedRecognizer` it has no ``model`` (batch decoders call
    :meth:`log_probs` per file); a CTC network only (transducers export to ONNX through ``--format sherpa-onnx``).
    """

    def __init__(self, session, features: FeatureConfig | InkFeatureConfig, tokens: list[str], corpus_type: str,
                 units: str, frame_reduction: int, source: str = "") -> None:
        self.session = session
        self.model = None
        self.features = features
        self.tokens = tokens
        self.corpus_type = corpus_type
        self.units = units
        self.source = source
        self.input_type = "ink" if isinstance(features, InkFeatureConfig) else "audio"
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
