"""Stage 5: scoring -- error rates by Levenshtein alignment (Kaldi/sclite conventions), decoding and scoring a
prepared split, reports and plots of finished experiments."""
