"""The network a :class:`~lstm_asr.nn.model.ModelConfig` describes: its ``head`` picks the CTC model or the RNN
transducer, both over the same BLSTM encoder. Checkpoints store the config, so this rebuilds any saved model."""

from __future__ import annotations

from lstm_asr.nn.model import BLSTMCTC, BLSTMEncoder, ModelConfig
from lstm_asr.nn.transducer import Transducer


def network_for(config: ModelConfig) -> BLSTMCTC | Transducer:
    """A fresh network of ``config``'s shape and head."""
    return Transducer(config) if config.head == "transducer" else BLSTMCTC(config)


def is_transducer(model: BLSTMEncoder | None) -> bool:
    """Whether ``model`` has a transducer head (its forward gives encoder frames, not log-probabilities)."""
    return isinstance(model, Transducer)
