"""``lstm-asr export`` of a transducer model: one self-contained TorchScript file.

``torch.jit.load("model.pt")(waveform)`` takes a 1-D float waveform at 16 kHz in [-1, 1] and returns the token ids
of its greedy transcription (the search runs inside, batch of one); ``.tokens`` turns them into symbols. For other
searches the file exposes the network's parts as methods a caller can drive, the interface of
:class:`lstm_asr.decoding.transducer_search.TransducerParts` (``lstm-asr decode --model model.pt --beam 16`` drives
them with the project's beam search):

* ``encode(waveform)`` -> (T', J) encoder frames projected for the joint network;
* ``initial_state(n)`` -> the prediction network's zero state for n hypotheses;
* ``predict(tokens (n,), state)`` -> (projected prediction vectors (n, J), new state);
* ``join(enc, pred)`` -> log-probabilities over blank + labels (broadcasting);
* ``greedy(enc)`` -> (token ids, their frames).

Attributes as in the CTC export (``tokens``, ``units``, ``sample_rate``, ``frame_shift_ms``, ``feature_config``)
plus ``head = "transducer"``, ``frame_reduction`` and ``max_symbols``. The feature pipeline is the CTC export's
:class:`~lstm_asr.export.torchscript.ScriptableFbank` and the encoder its
:class:`~lstm_asr.export.torchscript.SingleUtteranceEncoder` (the cells the CTC export takes; frame stacking,
subsampling and pyramids inside).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lstm_asr.data.features import FeatureConfig
from lstm_asr.decoding.transducer_search import DEFAULT_MAX_SYMBOLS
from lstm_asr.errors import LstmAsrError
from lstm_asr.export.torchscript import ExportedMetadata, ScriptableFbank, SingleUtteranceEncoder, save_script
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.nn.transducer import Transducer
from lstm_asr.recognition.recognizer import Recognizer


def is_transducer_checkpoint(exp: str | Path) -> bool:
    """Whether an experiment folder or checkpoint file holds a transducer model (False for anything else)."""
    path = Path(exp)
    path = path / "best.pt" if path.is_dir() else path
    try:
        return (load_checkpoint(path).get("model_config") or {}).get("head") == "transducer"
    except LstmAsrError:
        return False


class _Encoder(nn.Module):
    """The trained encoder on one utterance: features (T, D) -> projected encoder frames (T', J)."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.encoder = SingleUtteranceEncoder(model)
        self.project = model.joint.encoder_proj

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.project(self.encoder(features))[0]


class _LstmPredictor(nn.Module):
    """The LSTM prediction network, one label per hypothesis (what ``Transducer.predict`` runs, in TorchScript)."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        c, predictor = model.config, model.predictor
        self.embedding = predictor.embedding if predictor.embedding is not None else nn.Identity()
        self.one_hot: bool = predictor.embedding is None
        self.lstm = predictor.lstm
        self.pred_proj = model.joint.pred_proj
        self.num_classes: int = c.num_classes
        self.pred_layers: int = c.pred_layers
        self.pred_hidden: int = c.pred_hidden

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(self.pred_layers, n, self.pred_hidden)
        return zeros, zeros.clone()

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if self.one_hot:  # blank, the start symbol, is the zero vector
            x = nn.functional.one_hot(tokens, self.num_classes)[:, 1:].float()
        else:
            x = self.embedding(tokens)
        out, new_state = self.lstm(x.unsqueeze(1), state)
        return self.pred_proj(out[:, 0]), new_state


class _StatelessPredictor(nn.Module):
    """The stateless prediction network (``model.pred_context``): its state is the last context - 1 labels."""

    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.embedding = model.predictor.embedding
        self.proj = model.predictor.proj
        self.pred_proj = model.joint.pred_proj
        self.context: int = model.config.pred_context

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.full((1, n, self.context - 1), -1, dtype=torch.long),
                torch.zeros((1, n, 0), dtype=torch.long))

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        contexts = torch.cat([state[0][0], tokens.unsqueeze(1)], dim=1)  # (N, context)
        known = (contexts >= 0).unsqueeze(-1).float()
        emb = self.embedding(contexts.clamp(min=0)) * known
        out = torch.relu(self.proj(emb.flatten(1)))
        return self.pred_proj(out), (contexts[:, 1:].unsqueeze(0), state[1])


class ExportedTransducer(ExportedMetadata):
    """Waveform -> greedy token ids, with the network's parts as methods and the token list on board."""

    def __init__(self, model: Transducer, features: FeatureConfig, tokens: list[str], units: str,
                 corpus_type: str, max_symbols: int = DEFAULT_MAX_SYMBOLS) -> None:
        super().__init__(features, tokens, units, corpus_type)
        c = model.config
        self.features = ScriptableFbank(features)
        self.encoder = _Encoder(model)
        self.predictor = _StatelessPredictor(model) if c.pred_context else _LstmPredictor(model)
        self.output = model.joint.output
        self.num_classes: int = c.num_classes
        self.max_symbols: int = max_symbols
        self.head: str = "transducer"
        self.frame_reduction: int = c.frame_reduction

    @torch.jit.export
    def encode(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.features(waveform))

    @torch.jit.export
    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor.initial_state(n)

    @torch.jit.export
    def predict(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return self.predictor(tokens, state)

    @torch.jit.export
    def join(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.output(torch.tanh(enc + pred)), dim=-1)

    @torch.jit.export
    def greedy(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding of one utterance's encoder frames (T', J): token ids and the frame of each."""
        tokens: list[int] = []
        frames: list[int] = []
        state = self.initial_state(1)
        pred, state = self.predict(torch.zeros(1, dtype=torch.long), state)
        for t in range(enc.shape[0]):
            for _ in range(self.max_symbols):
                k = int(self.join(enc[t:t + 1], pred)[0].argmax())
                if k == 0:
                    break
                tokens.append(k)
                frames.append(t)
                pred, state = self.predict(torch.tensor([k], dtype=torch.long), state)
        return torch.tensor(tokens, dtype=torch.long), torch.tensor(frames, dtype=torch.long)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.greedy(self.encode(waveform))
        return tokens


def export_transducer(exp: str | Path, out: str | Path, fmt: str = "torchscript") -> Path:
    """Write a transducer experiment's best model as a TorchScript file; returns ``out``."""
    if fmt != "torchscript":
        raise LstmAsrError(f"{exp}: a transducer model exports as --format torchscript, or with a stateless "
                           "prediction network (model.pred_context) as --format sherpa-onnx (the search and the "
                           "prediction network's state do not fit one ONNX graph)")
    rec = Recognizer.load(exp)
    if not isinstance(rec.model, Transducer) or not isinstance(rec.features, FeatureConfig):
        raise LstmAsrError(f"{exp}: not a speech transducer model")
    return save_script(ExportedTransducer(rec.model.eval(), rec.features, rec.tokens, rec.units, rec.corpus_type),
                       out)
