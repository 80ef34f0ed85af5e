"""lstm-asr: stacked bidirectional LSTM + CTC recognisers for speech and online handwriting."""

__version__ = "0.1.0"
