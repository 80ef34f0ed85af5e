"""``lstm-asr export``: a trained model as one self-contained file.

TorchScript (default): raw 16 kHz mono waveform in [-1, 1] (1-D float tensor) -> log-probabilities (frames,
classes), with the feature pipeline inside, and the token list, unit type and frame shift as attributes
(``tokens``, ``units``, ``sample_rate``, ``frame_shift_ms``). ``torch.jit.load("model.pt")`` is all a user needs;
``lstm-asr decode --model model.pt`` reads it too.

``torchaudio.compliance.kaldi.fbank`` does not compile to TorchScript (it closes over Python floats), so
:class:`ScriptableFbank` restates it in plain tensor ops, with the mel filters and the window computed by
torchaudio at export time and stored as buffers; ``tests/test_export.py`` checks it against torchaudio.

ONNX (``--format onnx``, needs the ``onnx`` package): the network only, features (frames, dim) in, log-probs out;
the features are documented in the file's metadata (Kaldi fbank settings) since the FFT does not export.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.decoding.recognizer import Recognizer
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.model import BLSTMCTC

_EPS = float(torch.finfo(torch.float32).eps)  # torchaudio's floor before every log


class ScriptableFbank(nn.Module):
    """Kaldi log mel filterbank (+ log energy) and deltas, as :func:`lstm_asr.data.features.compute_features` computes
    them with torchaudio's defaults (povey window, pre-emphasis 0.97, DC removal, raw energy, energy floor 1,
    power spectrum, snip_edges), written so that TorchScript can compile it."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.window_size = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
        self.window_shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
        self.padded = 1 if self.window_size == 0 else 2 ** (self.window_size - 1).bit_length()
        self.use_energy = cfg.use_energy
        self.deltas = cfg.deltas
        self.eps = _EPS
        window = torch.hann_window(self.window_size, periodic=False).pow(0.85)  # float32, as torchaudio
        self.register_buffer("window", window)
        mel, _ = kaldi.get_mel_banks(cfg.num_mel_bins, self.padded, float(cfg.sample_rate), 20.0, 0.0, 100.0,
                                     -500.0, 1.0)
        mel = nn.functional.pad(mel.float(), (0, 1))  # the Nyquist bin gets no weight, as in torchaudio
        self.register_buffer("mel_t", mel.T.contiguous())

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 1 or waveform.numel() < self.window_size:
            raise ValueError("expected a 1-D waveform at least one frame long")
        frames = (waveform * 32768.0).unfold(0, self.window_size, self.window_shift)
        frames = frames - frames.mean(dim=1, keepdim=True)
        energy = frames.pow(2).sum(1).clamp_min(self.eps).log().clamp_min(0.0)  # log(energy_floor = 1) = 0
        previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
        frames = (frames - 0.97 * previous) * self.window
        frames = nn.functional.pad(frames, (0, self.padded - self.window_size))
        spectrum = torch.fft.rfft(frames).abs().pow(2.0)
        feats = torch.mm(spectrum, self.mel_t).clamp_min(self.eps).log()
        if self.use_energy:
            feats = torch.cat([energy.unsqueeze(1), feats], dim=1)
        parts = [feats]
        cur = feats.T.unsqueeze(0)
        for _ in range(self.deltas):
            cur = AF.compute_deltas(cur, win_length=5)
            parts.append(cur.squeeze(0).T)
        return torch.cat(parts, dim=1).contiguous()


class _Direction(nn.Module):
    """One BLSTM layer on a single utterance: with no padding, the per-sequence reversal is a plain flip."""

    def __init__(self, fwd: nn.LSTM, bwd: nn.LSTM) -> None:
        super().__init__()
        self.fwd = fwd
        self.bwd = bwd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(x.flip(1))
        return torch.cat([out_f, out_b.flip(1)], dim=-1)


class SingleUtteranceNetwork(nn.Module):
    """The trained network's weights, applied to one utterance (features (T, D) -> log-probs (T, C))."""

    def __init__(self, model: BLSTMCTC) -> None:
        super().__init__()
        c = model.config
        if c.cell != "lstm" or c.projection or c.frame_reduction > 1 or c.stack_frames > 1 or c.conv_layers:
            raise LstmAsrError(f"export supports plain LSTM models only, not model.cell {c.cell!r}, projection "
                               f"{c.projection}, stack_frames {c.stack_frames}, subsample {c.subsample}, "
                               f"pyramid {c.pyramid}, conv_layers {c.conv_layers}")
        self.normalizer = model.normalizer
        self.layers = nn.ModuleList(_Direction(layer.fwd, layer.bwd) for layer in model.layers)
        self.output = model.output

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.normalizer(features).unsqueeze(0)
        for layer in self.layers:
            x = layer(x)
        return torch.log_softmax(self.output(x), dim=-1)[0]


class ExportedModel(nn.Module):
    """Waveform -> log-probabilities, with the token list and unit type on board."""

    def __init__(self, model: BLSTMCTC, features: FeatureConfig, tokens: list[str], units: str,
                 corpus_type: str) -> None:
        super().__init__()
        self.features = ScriptableFbank(features)
        self.network = SingleUtteranceNetwork(model)
        self.tokens: list[str] = list(tokens)
        self.units: str = units
        self.corpus_type: str = corpus_type
        self.sample_rate: int = features.sample_rate
        self.frame_shift_ms: float = features.frame_shift_ms
        self.feature_config: str = json.dumps(features.to_dict())

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.network(self.features(waveform))


def _speech_recognizer(exp: str | Path) -> Recognizer:
    rec = Recognizer.load(exp)
    if rec.model is None:
        raise LstmAsrError(f"{exp}: already an exported model; export from the experiment folder")
    if not isinstance(rec.features, FeatureConfig):
        raise LstmAsrError(f"{exp}: only speech models (waveform in) can be exported")
    return rec


def export_torchscript(exp: str | Path, out: str | Path) -> Path:
    """Write the experiment's best model as a TorchScript file; returns ``out``."""
    rec = _speech_recognizer(exp)
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export, which has no LSTM yet
        warnings.simplefilter("ignore")
        module = torch.jit.script(ExportedModel(rec.model.eval(), rec.features, rec.tokens, rec.units,
                                                rec.corpus_type))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module.save(str(out))
    return out


def export_onnx(exp: str | Path, out: str | Path) -> Path:
    """Write the network (features -> log-probs, one utterance) as ONNX, with the feature settings and token list
    in its metadata. Needs the optional ``onnx`` package."""
    try:
        import onnx
    except ImportError:
        raise LstmAsrError("--format onnx needs the onnx package (pip install 'lstm-asr[onnx]')") from None
    rec = _speech_recognizer(exp)
    net = SingleUtteranceNetwork(rec.model.eval())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(50, rec.model.config.input_dim)
    with warnings.catch_warnings():  # a batch-size caveat for LSTMs that does not apply (one utterance)
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(out), input_names=["features"], output_names=["log_probs"],
                          dynamic_axes={"features": {0: "frames"}, "log_probs": {0: "frames"}}, dynamo=False)
    proto = onnx.load(str(out))
    meta = {"tokens": json.dumps(rec.tokens), "units": rec.units,
            "features": json.dumps({**rec.features.to_dict(), "kind": "kaldi fbank (torchaudio.compliance.kaldi "
                                    "defaults, waveform scaled by 32768) + deltas (win 5), not normalised: the "
                                    "network normalises"})}
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    onnx.save(proto, str(out))
    return out

