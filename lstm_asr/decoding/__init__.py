"""Stage 4: decoding -- from a trained network's outputs to token sequences: greedy and beam search, language models,
alignment, long-file and batch decoding, the recogniser that decodes files, and export to one self-contained file."""
