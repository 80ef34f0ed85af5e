"""Corpus readers (TIMIT, ...) and generators of corpora in the same layouts."""
