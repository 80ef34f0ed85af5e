"""``lstm-asr export --format onnx``: the network alone, features (frames, dim) in, log-probs out.

Needs the ``onnx`` package; ``lstm-asr decode --model model.onnx`` runs the file in ONNX Runtime
(:class:`~lstm_asr.recognition.recognizer.OnnxRecognizer`). The feature pipeline stays outside (the FFT does not
export): the file's metadata documents the features (Kaldi fbank settings, or the ink features) and carries the token
list, unit type, corpus type and frame-rate reduction.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from lstm_asr.data.features import FeatureConfig
from lstm_asr.errors import LstmAsrError
from lstm_asr.export.torchscript import SingleUtteranceNetwork, experiment_to_export
from lstm_asr.nn.model import BLSTMCTC
from lstm_asr.recognition.recognizer import Recognizer


def onnx_problem(model: BLSTMCTC) -> str | None:
    """Why the network cannot go to ONNX (one line), or None when it can."""
    c = model.config
    if c.cell == "peephole":
        return ("the peephole cell is a hand-written recurrence; ONNX export traces it into one fixed length, and "
                "ONNX's own LSTM peepholes follow another formulation: use TorchScript")
    if c.projection:
        return "ONNX's LSTM operator has no projection (LSTMP): use TorchScript"
    if model.latency_controlled:
        return ("a latency-controlled model runs chunk by chunk with carried state, which ONNX export unrolls to "
                "one fixed length: use TorchScript (or --streaming)")
    return None


def experiment_to_onnx(exp: str | Path, fmt: str, extra: str, target: str,
                       problem: Callable[[Recognizer], str | None]) -> Recognizer:
    """The experiment an ONNX export (``--format fmt``) writes out, after the checks every ONNX export makes, each a
    one-line error: the ``onnx`` package is installed (from the ``extra`` of lstm-asr), ``exp`` is an experiment
    rather than an exported file, and ``problem`` finds nothing that keeps it from going ``target``."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise LstmAsrError(f"--format {fmt} needs the onnx package (pip install 'lstm-asr[{extra}]')") from None
    rec = experiment_to_export(exp)
    why = problem(rec)
    if why is not None:
        raise LstmAsrError(f"{exp}: cannot export {target}: {why}")
    return rec


def export_onnx(exp: str | Path, out: str | Path) -> Path:
    """Write the network (features -> log-probs, one utterance) as ONNX, with the feature settings and token list
    in its metadata. Needs the optional ``onnx`` package."""
    rec = experiment_to_onnx(exp, "onnx", "onnx", "to ONNX", lambda r: onnx_problem(r.model))
    import onnx  # there: experiment_to_onnx checked

    net = SingleUtteranceNetwork(rec.model.eval())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(50, rec.model.config.input_dim)
    with warnings.catch_warnings():  # a batch-size caveat for LSTMs that does not apply (one utterance)
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(out), input_names=["features"], output_names=["log_probs"],
                          dynamic_axes={"features": {0: "frames"}, "log_probs": {0: "frames"}}, dynamo=False)
    proto = onnx.load(str(out))
    if isinstance(rec.features, FeatureConfig):
        kind = ("kaldi fbank (torchaudio.compliance.kaldi defaults, waveform scaled by 32768) + deltas (win 5), not "
                "normalised: the network normalises")
    else:
        kind = ("ink: lstm_asr.data.ink_features.featurize_ink (dx, dy, dt, pen-up, stroke start per resampled "
                "point), not normalised: the network normalises")
    meta = {"tokens": json.dumps(rec.tokens), "units": rec.units, "corpus_type": rec.corpus_type, "head": "ctc",
            "frame_reduction": str(rec.model.frame_reduction),
            "features": json.dumps({**rec.features.to_dict(), "kind": kind})}
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(out))
    return out

