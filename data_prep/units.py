"""Output units for corpora with text transcripts: phones, characters, sentencepiece BPE.

A unit set is fitted on the training transcripts (its inventory is the model's token list) and then maps any
transcript to label symbols, or says why it cannot (a character outside the inventory, an out-of-lexicon word).
Hypotheses map back to words without anything but the token list: character units mark word boundaries with
``|`` and BPE pieces start words with ``▁`` (sentencepiece's convention), so the exported model's token list is all
a decoder needs to write text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lstm_asr.errors import CorpusError, LstmAsrError

WORD_SEP = "|"  # word boundary among character units (wav2vec 2.0 / fairseq convention)
BPE_SPACE = "\u2581"  # "▁": sentencepiece's word-start mark
UNIT_TYPES = ("phones", "chars", "bpe")


class UnitError(ValueError):
    """A transcript that the unit set cannot express; the message is the skip reason."""


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace; nothing else (case and punctuation are the corpus's business)."""
    return " ".join(text.split())


def tokens_to_words(tokens: Iterable[str], units: str) -> list[str]:
    """Words of a token sequence: characters and BPE pieces are glued back to text, phones stay as they are."""
    tokens = list(tokens)
    if units == "chars":
        return "".join(tokens).replace(WORD_SEP, " ").split()
    if units == "bpe":
        return "".join(tokens).replace(BPE_SPACE, " ").split()
    return tokens


def units_of(tokens: Iterable[str]) -> str:
    """Guess the unit type from a token inventory (for models that predate stored unit names)."""
    tokens = list(tokens)
    if WORD_SEP in tokens:
        return "chars"
    if any(t.startswith(BPE_SPACE) for t in tokens):
        return "bpe"
    return "phones"


def read_lexicon(path: str | Path) -> dict[str, tuple[str, ...]]:
    """Read a CMUdict-format lexicon: ``WORD PH1 PH2 ...`` per line; ``;;;`` comments; ``WORD(2)`` alternative
    pronunciations (the first one is used); a Kaldi ``lexiconp.txt`` probability column is accepted and ignored.

    A line without a pronunciation is a one-line error naming the file and line.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except FileNotFoundError:
        raise CorpusError(path, "lexicon not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read lexicon ({exc})") from None
    lexicon: dict[str, tuple[str, ...]] = {}
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith(";;;"):
            continue
        fields = line.split()
        if len(fields) > 2 and re.fullmatch(r"[0-9.]+", fields[1]):
            fields = [fields[0], *fields[2:]]  # lexiconp.txt: WORD PROB PH1 ...
        if len(fields) < 2:
            raise CorpusError(path, f"line {n}: expected 'WORD PHONE ...' (CMUdict format), got {line.strip()!r}")
        word = re.sub(r"\(\d+\)$", "", fields[0])
        phones = tuple(fields[1:])
        if WORD_SEP in phones or any(BPE_SPACE in p for p in phones):
            raise CorpusError(path, f"line {n}: '{WORD_SEP}' and '{BPE_SPACE}' cannot be phones")
        lexicon.setdefault(word, phones)
    if not lexicon:
        raise CorpusError(path, "lexicon has no entries")
    return lexicon


class Units:
    """Base: ``fit(training transcripts)``, then ``inventory`` and ``labels(text)``."""

    name = ""

    def fit(self, texts: list[str]) -> None:
        raise NotImplementedError

    @property
    def inventory(self) -> list[str]:
        raise NotImplementedError

    def labels(self, text: str, keep_unknown: bool = False) -> tuple[str, ...]:
        """The labels of a transcript. A symbol outside the inventory raises :class:`UnitError` (training text
        must be expressible); with ``keep_unknown`` (dev and test references, only ever scored) it stays in the
        labels as it is, a reference symbol no hypothesis can produce, so scoring counts it as an error."""
        raise NotImplementedError


class CharUnits(Units):
    """Characters of the training text, plus ``|`` between words."""

    name = "chars"

    def __init__(self) -> None:
        self.chars: list[str] = []

    def fit(self, texts: list[str]) -> None:
        seen = {c for t in texts for c in normalize_text(t).replace(" ", "")}
        if WORD_SEP in seen:
            raise LstmAsrError(f"transcripts contain '{WORD_SEP}', which character units use as the word boundary")
        self.chars = sorted(seen)

    @property
    def inventory(self) -> list[str]:
        return [WORD_SEP, *self.chars]  # always present, so the unit type can be read off the token list

    def labels(self, text: str, keep_unknown: bool = False) -> tuple[str, ...]:
        text = normalize_text(text)
        known = set(self.chars)
        bad = [c for c in text.replace(" ", "") if c not in known]
        if bad and not keep_unknown:  # the first one in the text, so the message points at where to look
            raise UnitError(f"character {bad[0]!r} is not in the training character set")
        return tuple(WORD_SEP if c == " " else c for c in text)


class PhoneUnits(Units):
    """Phones: the transcripts themselves (space-separated phones), or words mapped through a lexicon."""

    name = "phones"

    def __init__(self, lexicon: str | Path = "") -> None:
        self.lexicon = read_lexicon(lexicon) if lexicon else None
        self.phones: list[str] = []

    def fit(self, texts: list[str]) -> None:
        if self.lexicon is not None:
            self.phones = sorted({p for pron in self.lexicon.values() for p in pron})
        else:
            self.phones = sorted({p for t in texts for p in t.split()})

    @property
    def inventory(self) -> list[str]:
        return list(self.phones)

    def labels(self, text: str, keep_unknown: bool = False) -> tuple[str, ...]:
        words = text.split()
        if self.lexicon is None:
            bad = [p for p in words if p not in set(self.phones)]
            if bad and not keep_unknown:
                raise UnitError(f"phone {bad[0]!r} is not in the training phone set")
            return tuple(words)
        out: list[str] = []
        for w in words:
            pron = self.lexicon.get(w)
            if pron is None:  # its phones are unknown, so it cannot be a reference either
                raise UnitError(f"out-of-lexicon word {w!r}")
            out.extend(pron)
        return tuple(out)


class BpeUnits(Units):
    """Sentencepiece BPE trained (in memory, deterministically) on the training transcripts."""

    name = "bpe"

    def __init__(self, vocab_size: int = 100) -> None:
        self.vocab_size = vocab_size
        self.sp = None

    def fit(self, texts: list[str]) -> None:
        try:
            import sentencepiece as spm
        except ImportError:
            raise LstmAsrError("units: bpe needs the sentencepiece package (pip install 'lstm-asr[bpe]')") from None
        import io

        model = io.BytesIO()
        # One thread and no sampling: the same text gives the same pieces, so prep's fingerprint stays stable.
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([normalize_text(t) for t in texts]), model_writer=model,
            vocab_size=self.vocab_size, model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, num_threads=1, minloglevel=2,
        )
        self.sp = spm.SentencePieceProcessor(model_proto=model.getvalue())

    @property
    def inventory(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(1, self.sp.get_piece_size())]  # 0 is <unk>

    def labels(self, text: str, keep_unknown: bool = False) -> tuple[str, ...]:
        ids = self.sp.encode(normalize_text(text))
        if 0 in ids and keep_unknown:  # unknown characters come back as pieces of their own, spelt as they are
            return tuple(self.sp.encode(normalize_text(text), out_type=str))
        if 0 in ids:
            bad = sorted(set(normalize_text(text)) - set("".join(self.inventory)) - {" "})
            raise UnitError(f"character {bad[0] if bad else '?'!r} is not in the BPE model's characters")
        return tuple(self.sp.id_to_piece(i) for i in ids)


class FittedOnTrainingText:
    """Mixin for corpus sources whose units are learnt from their own training transcripts (characters, BPE).

    The source sets ``root``, ``train_split`` and ``units`` and implements :meth:`training_texts`; the units are
    fitted once, on first use.
    """

    root: Path
    train_split: str
    units: Units
    _fitted = False

    def training_texts(self) -> list[str]:
        """The transcripts of the training split, one string per utterance."""
        raise NotImplementedError

    def _fit(self) -> None:
        if not self._fitted:
            texts = self.training_texts()
            # A corpus a multi-corpus recipe only tests or develops on (train_split "") fits nothing: its labels
            # keep every symbol, and the model's inventory comes from the corpora it trains on.
            if not texts and self.train_split:
                raise LstmAsrError(f"{self.root}: training split '{self.train_split}' has no transcripts")
            self.units.fit(texts)
            self._fitted = True

    def tokens(self) -> list[str]:
        """The unit inventory (for characters: ``|`` stands for the space between words), fitted on the
        training split's transcripts."""
        self._fit()
        return self.units.inventory


def char_labels(text: str) -> list[str]:
    """Character labels of a text whatever the inventory: its characters, each run of white space one ``|``."""
    return [WORD_SEP if c == " " else c for c in normalize_text(text)]


class ScoredAsCharacters:
    """Mixin for the handwriting sources' scoring: the error rate over characters, word boundary included (CER),
    and a word error rate (WER) over the words the characters spell."""

    metric = "CER"

    @staticmethod
    def score_units(symbols: list[str]) -> list[str]:
        """Characters, the word boundary included: character error rate."""
        return list(symbols)

    @staticmethod
    def word_units(symbols: list[str]) -> list[str]:
        """Words glued back from the characters: word error rate."""
        return tokens_to_words(symbols, "chars")

    extra_metrics = {"WER": word_units}

    @classmethod
    def scorer(cls, units: str = ""):
        return cls.score_units


def make_units(units: str, lexicon: str = "", bpe_vocab_size: int = 100) -> Units:
    """The unit set a recipe names (``corpus.units``)."""
    if units == "chars":
        return CharUnits()
    if units == "phones":
        return PhoneUnits(lexicon)
    if units == "bpe":
        return BpeUnits(bpe_vocab_size)
    raise LstmAsrError(f"unknown units {units!r} (use {', '.join(UNIT_TYPES)})")

