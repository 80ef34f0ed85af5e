"""Train/dev/test splits for recorded corpora that come without standard ones, deterministic and disjoint.

Two things must never cross from test into training: a speaker (or the PER measures memory of a voice) and a
sentence (or it measures memory of a text: CMU ARCTIC's voices and Kathleen read the same 1,132 prompts). Both are
decided by a hash, not by a random draw or by position in a listing, so that

- the same sentence lands in the same split in *every* corpus and on every machine: a sentence's split is a
  function of its normalised text alone (:func:`sentence_key`), so ARCTIC and Kathleen, prepared separately, can
  never share a sentence between one's training set and the other's test set;
- adding or removing files moves nothing else.

``corpus.split_by`` picks the rule: ``sentence`` (the default: the sentence's hash picks the split),
``speaker`` (the speaker's hash picks it; for corpora of many speakers) or ``speaker_sentence`` (the speaker's
split, kept only where the sentence's hash agrees; utterances where they disagree are left out, counted).
``corpus.test_speakers`` holds speakers out whole: they appear in test only (on test sentences under the sentence
rules), and nobody else does, so a test on them is on a voice and on sentences that were never trained on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

SPLIT_RULES = ("sentence", "speaker", "speaker_sentence")
SPLIT_NAMES = ("train", "dev", "test")
DROPPED = ""  # the "split" of an utterance that the rule leaves out


def sentence_key(text: str) -> str:
    """A sentence as the split hashes it: lower case, letters, digits and inner apostrophes, single spaces (so
    ``"Lord, but I'm glad to see you again, Phil."`` and ``LORD BUT I'M GLAD TO SEE YOU AGAIN PHIL`` are one)."""
    words = re.sub(r"[^\w']+", " ", text.lower()).replace("_", " ").split()
    return " ".join(w.strip("'") for w in words if w.strip("'"))


def unit_share(kind: str, key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (SHA-256, the same in every process and on every machine)."""
    digest = hashlib.sha256(f"{kind}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class HeldOut:
    """A split rule: which share of sentences (or speakers) goes to dev and test, and who is held out whole."""

    rule: str = "sentence"
    dev_share: float = 0.05
    test_share: float = 0.1
    test_speakers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.rule not in SPLIT_RULES:
            raise ValueError(f"unknown split rule {self.rule!r} (use {', '.join(SPLIT_RULES)})")
        if self.dev_share < 0 or self.test_share < 0 or self.dev_share + self.test_share >= 1:
            raise ValueError("dev and test shares must be >= 0 and leave some training data (sum below 1)")

    def _bucket(self, kind: str, key: str, test_allowed: bool = True) -> str:
        u = unit_share(kind, key)
        if not test_allowed:  # test is someone else's (held-out speakers, a corpus's own test set)
            return "dev" if u < self.dev_share else "train"
        if u < self.test_share:
            return "test"
        if u < self.test_share + self.dev_share:
            return "dev"
        return "train"

    def speaker_bucket(self, speaker: str, test_allowed: bool = True) -> str:
        """The split a speaker's hash picks (dev and test shares of speakers)."""
        return self._bucket("speaker", speaker, test_allowed)

    def speaker_split(self, speaker: str) -> str | None:
        """The split a speaker belongs to, or None where the rule does not split by speaker (anywhere but test
        when other speakers are held out for it)."""
        if speaker in self.test_speakers:
            return "test"
        if self.rule == "sentence":
            return None
        return self.speaker_bucket(speaker, test_allowed=not self.test_speakers)

    def sentence_split(self, sentence: str) -> str:
        """The split of a sentence (its :func:`sentence_key`) in every corpus."""
        return self._bucket("sentence", sentence_key(sentence))

    def assign(self, speaker: str, sentence: str) -> str:
        """The split of one utterance, or :data:`DROPPED` when its speaker and its sentence belong to different
        splits and the rule keeps both apart."""
        by_speaker = self.speaker_split(speaker)
        if self.rule == "speaker":
            return by_speaker or "train"
        by_sentence = self.sentence_split(sentence)
        if by_speaker is None:
            # Under the sentence rule with held-out speakers, everyone else stays out of test.
            return DROPPED if (self.test_speakers and by_sentence == "test") else by_sentence
        return by_sentence if by_sentence == by_speaker else DROPPED

    def sentences_of(self, split: str, sentences: Iterable[str]) -> set[str]:
        """The sentence keys among ``sentences`` whose split is ``split`` (for checks and reports)."""
        return {sentence_key(s) for s in sentences if self.sentence_split(s) == split}
