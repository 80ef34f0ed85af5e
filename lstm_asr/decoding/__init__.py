"""Stage 4: decoding -- searches over a network's outputs: greedy and prefix beam search for CTC, the transducer's
searches, their streaming forms, n-gram and lexicon language models, and forced alignment. They know tensors and
tokens, not files: reading audio and ink, long recordings and streams are the recognition stage's."""
