"""Beam search with a lexicon and an n-gram language model, through torchaudio's flashlight CTC decoder.

Two modes:

* **lexicon-free** (phones, characters): the language model is over the model's own tokens (e.g. a phone
  bigram from ``lstm-asr lm build``); every token of the model must be in the ARPA vocabulary. flashlight's
  lexicon-free decoder has no insertion score (``word_score`` must be 0 here); our own prefix beam search
  with bigram fusion (:mod:`lstm_asr.decoding.search`) has one.
* **lexicon** (words): a lexicon file maps each word to one or more token spellings (``word tok tok ...`` per
  line; a word may have several lines); the language model is over words, and ``word_score`` is added per word.
  Between words the decoder allows a silence token: the first of ``|``, ``<space>``, ``▁``, ``h#``, ``sil``,
  ``pau`` the model has (blank otherwise). Limitation (flashlight's design, for wav2letter-style models with a
  word separator that fires): once a word is complete the decoder is back at the lexicon root, where the word's
  last token cannot be repeated on the next frame -- only blank or silence can. A model whose word-final token
  lasts several frames is penalised there; measured with a one-phone-per-word lexicon, decoding went from 44%
  (lexicon-free) to 69% PER. Prefer lexicon-free decoding with a token LM for phone and character models.

The LM is an ARPA file (checked line by line by :func:`lstm_asr.decoding.ngram.read_arpa` first, so a malformed
file is a
one-line error naming the file and line rather than a crash inside KenLM). Scores: acoustic log-probs (natural
log) + ``lm_weight`` * LM log10 probabilities + insertion scores, as flashlight defines them.

Needs the optional ``flashlight-text`` package (``pip install lstm-asr[lm]``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from lstm_asr.data.tokens import BLANK
from lstm_asr.decoding.ngram import check_vocab, read_arpa
from lstm_asr.errors import LstmAsrError, read_user_text

SILENCE_TOKENS = ("|", "<space>", "\u2581", "h#", "sil", "pau")


@dataclass(frozen=True)
class LMHypothesis:
    """One decoded result: token ids (blank removed), words (lexicon mode), total score, and the frame at which
    each token was emitted."""

    tokens: tuple[int, ...]
    words: tuple[str, ...]
    score: float
    frames: tuple[int, ...]


@dataclass
class LMDecoderConfig:
    """Settings of :class:`LMDecoder` (the recipe's ``decoding`` section or the CLI options)."""

    lm: str = ""  # ARPA file; empty = no language model
    lexicon: str = ""  # lexicon file; empty = lexicon-free
    lm_weight: float = 1.0
    word_score: float = 0.0  # per word (lexicon) or per token (lexicon-free)
    beam: int = 16
    beam_size_token: int = 0  # tokens considered per frame; 0 = all
    beam_threshold: float = 25.0  # drop hypotheses this far below the best
    nbest: int = 1


def flashlight_available() -> bool:
    """True when torchaudio's flashlight decoder can be built (the ``flashlight-text`` package is installed)."""
    try:
        from torchaudio.models.decoder import ctc_decoder  # noqa: F401
    except (ImportError, RuntimeError):
        return False
    return True


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence KenLM's progress bar (it writes to file descriptor 2 from C++)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _as_one_line_error(source: str) -> Iterator[None]:
    """Report a failure inside flashlight/KenLM (C++ exceptions arrive as RuntimeError) as one line."""
    try:
        yield
    except RuntimeError as exc:
        lines = [x for x in str(exc).splitlines() if x.strip()]
        raise LstmAsrError(f"{source}: flashlight could not load it ({lines[-1] if lines else exc})") from None


def read_lexicon(path: str | Path, tokens: list[str]) -> dict[str, list[list[str]]]:
    """Read ``word tok tok ...`` lines; an entry with a token the model lacks is an error naming file and line."""
    path = Path(path)
    known = set(tokens) - {BLANK}
    text = read_user_text(path, "lexicon file")
    lexicon: dict[str, list[list[str]]] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise LstmAsrError(f"{path}:{lineno}: lexicon entry {fields[0]!r} has no spelling "
                               "(expected 'word tok tok ...')")
        unknown = [t for t in fields[1:] if t not in known]
        if unknown:
            raise LstmAsrError(f"{path}:{lineno}: lexicon entry {fields[0]!r} uses token(s) the model does not have: "
                               f"{', '.join(dict.fromkeys(unknown))}")
        lexicon.setdefault(fields[0], []).append(fields[1:])
    if not lexicon:
        raise LstmAsrError(f"{path}: lexicon is empty")
    return lexicon


def spelling_lexicon(sentences: list[list[str]], tokens: list[str]) -> tuple[list[tuple[str, list[str]]], Counter]:
    """A lexicon for a character model: every distinct word of ``sentences`` spelt in the model's characters,
    followed by the word boundary ``|`` (``HELLO H E L L O |``), sorted.

    Words using a character the model lacks cannot be spelt and are left out; they are returned counted, so the
    caller can report them. Only for character models (the token list must contain ``|``).
    """
    if "|" not in tokens:
        raise LstmAsrError("a spelling lexicon needs a character model (its tokens have no '|' word boundary)")
    known = set(tokens) - {BLANK, "|"}
    entries, unspellable = [], Counter()
    for word in sorted({w for sentence in sentences for w in sentence}):
        if all(c in known for c in word):
            entries.append((word, [*word, "|"]))
        else:
            unspellable[word] += 1
    return entries, unspellable


class LMDecoder:
    """flashlight CTC beam search over a model's (B, T, V) log-probs, with optional lexicon and ARPA LM."""

    def __init__(self, tokens: list[str], config: LMDecoderConfig) -> None:
        if config.word_score and not config.lexicon:
            raise LstmAsrError("flashlight's lexicon-free decoder has no insertion score: use word_score 0, a "
                               "lexicon, or our own search (a token bigram LM without lexicon)")
        try:
            from torchaudio.models.decoder import ctc_decoder
        except (ImportError, RuntimeError):
            raise LstmAsrError("LM decoding needs the flashlight-text package: pip install 'lstm-asr[lm]'") from None
        if tokens[0] != BLANK:
            raise LstmAsrError(f"the model's token 0 must be {BLANK}, got {tokens[0]!r}")
        if config.beam < 1 or config.nbest < 1:
            raise LstmAsrError(f"beam and nbest must be >= 1, got beam={config.beam}, nbest={config.nbest}")
        self.tokens = tokens
        self.config = config
        self._tmp: tempfile.TemporaryDirectory | None = None
        labels = tokens[1:]
        lexicon_path: str | None = None
        if config.lexicon:
            read_lexicon(config.lexicon, tokens)  # validate before flashlight sees it
            lexicon_path = str(config.lexicon)
        lm_path: str | None = None
        lm_dict: str | None = None
        if config.lm:
            lm = read_arpa(config.lm)
            if lm.order < 2:
                raise LstmAsrError(f"{config.lm}: a unigram model; flashlight's KenLM needs order >= 2 "
                                   "(lstm-asr lm build --order 2)")
            if not config.lexicon:
                check_vocab(config.lm, lm, labels)
            lm_path = str(config.lm)
            if lexicon_path is None:
                # The lexicon-free decoder passes token ids to the LM as word ids, but torchaudio builds the
                # word list from a hash map, in no particular order: give it the words in token order.
                self._tmp = tempfile.TemporaryDirectory(prefix="lstm-asr-lm-")
                lm_dict = os.path.join(self._tmp.name, "words.txt")
                Path(lm_dict).write_text("".join(f"{t}\n" for t in [*tokens, "<unk>"]), encoding="utf-8")
        silence = self.silence_token(tokens)
        # The lexicon decoder's path starts and ends in the silence token when the model has one (the word
        # separator "|" of character models): it is not a word boundary, and a reference has none there.
        self._edge = tokens.index(silence) if lexicon_path and silence != BLANK else None
        with _quiet_stderr(), _as_one_line_error(config.lm or config.lexicon):
            self.decoder = ctc_decoder(
                lexicon=lexicon_path, tokens=list(tokens), lm=lm_path, lm_dict=lm_dict, nbest=config.nbest,
                beam_size=config.beam,
                beam_size_token=config.beam_size_token or None, beam_threshold=config.beam_threshold,
                lm_weight=config.lm_weight if lm_path else 0.0, word_score=config.word_score,
                blank_token=BLANK, sil_token=silence if lexicon_path else BLANK,
                unk_word="<unk>",
            )

    @staticmethod
    def silence_token(tokens: list[str]) -> str:
        """The token the lexicon decoder may emit between words (blank when the model has none)."""
        return next((t for t in SILENCE_TOKENS if t in tokens), BLANK)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[LMHypothesis]]:
        """N-best lists (best first) for each utterance of a padded (B, T, V) batch."""
        if log_probs.dim() != 3:
            raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
        emissions = log_probs.detach().to("cpu", torch.float32).contiguous()
        lens = None if lengths is None else lengths.detach().to("cpu", torch.long)
        out = []
        for hyps in self.decoder(emissions, lens):
            # flashlight's token path starts with one extra (silence) step before frame 0: shift times back.
            paths = [self._trim(h.tokens.tolist(), h.timesteps.tolist()) for h in hyps]
            out.append([LMHypothesis(toks, tuple(h.words), float(h.score), times)
                        for h, (toks, times) in zip(hyps, paths, strict=True)])
        return out

    def _trim(self, tokens: list[int], times: list[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Tokens and frames of a path, less the silence at its two ends (lexicon decoding) and the extra step."""
        lo, hi = 0, len(tokens)
        if self._edge is not None:
            while lo < hi and tokens[lo] == self._edge:
                lo += 1
            while hi > lo and tokens[hi - 1] == self._edge:
                hi -= 1
        return tuple(tokens[lo:hi]), tuple(t - 1 for t in times[lo:hi])
