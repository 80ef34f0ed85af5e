"""Decoding and drawing pen-stroke files: ``lstm-asr decode`` for handwriting models, and ``lstm-asr render``.

A handwriting model's checkpoint stores ink feature settings (``features.type: ink``), so
:class:`~lstm_asr.recognition.recognizer.Recognizer` knows its input is pen strokes; the CLI hands such models to
:func:`decode_ink_files`. Input files are IAM-OnDB stroke XML or InkML (told apart by the root element). When a
file carries its transcription (an InkML ``<annotation type="truth">``, or the ``ascii`` line of a stroke file
inside an IAM-OnDB tree), the character error rate against it is reported too. Decoding never depends on that
transcription: one with characters the model cannot write (outside its inventory) is scored as it is, those
characters being errors no hypothesis can avoid, and the run says so once on stderr, with the characters and the
number of lines they touch (``--json``: each such line's ``unknown_chars``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from data_prep.iam_ondb import read_ink_and_truth
from data_prep.units import char_labels
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink
from lstm_asr.data.tokens import BLANK
from lstm_asr.errors import CorpusError, LstmAsrError
from lstm_asr.recognition.recognizer import Recognizer, Transcript
from lstm_asr.scoring.levenshtein import align


def reference_labels(ref: str, tokens: list[str]) -> tuple[list[str], list[str]]:
    """Character labels of a transcription (a space is ``|``), and those of its characters that are outside the
    model's inventory (sorted). Those stay in the labels: scored, they are errors the model cannot avoid."""
    labels = char_labels(ref)
    known = set(tokens) - {BLANK}
    return labels, sorted({c for c in labels if c not in known})


@dataclass
class InkResult:
    transcript: Transcript
    reference: str | None = None
    cer: float | None = None  # percent, when a reference is known
    unknown: list[str] = field(default_factory=list)  # the reference's characters outside the model's inventory

    def to_dict(self) -> dict:
        d = self.transcript.to_dict()
        if self.reference is not None:
            d.update(reference=self.reference, cer=round(self.cer, 2))
            if self.unknown:
                d["unknown_chars"] = self.unknown
        return d


@dataclass
class UnknownCharacters:
    """The characters of a run's references that the model cannot write, and how many lines hold them."""

    chars: set[str] = field(default_factory=set)
    lines: int = 0

    def add(self, result: InkResult) -> None:
        if result.unknown:
            self.chars.update(result.unknown)
            self.lines += 1

    def note(self) -> str:
        """The one line a run prints about them (empty when there were none)."""
        if not self.lines:
            return ""
        return (f"note: {self.lines} reference line{'s' if self.lines != 1 else ''} "
                f"{'hold' if self.lines != 1 else 'holds'} characters outside the model's inventory "
                f"({' '.join(repr(c) for c in sorted(self.chars))}); they are scored as errors the model cannot "
                "avoid")


@torch.inference_mode()
def transcribe_ink(rec: Recognizer, path: str | Path, beam: int = 1) -> InkResult:
    """Recognise one pen-stroke file; token times are the writing times of the points where they are emitted."""
    cfg = rec.features
    if not isinstance(cfg, InkFeatureConfig):
        raise LstmAsrError(f"{path}: this model reads audio, not pen strokes")
    ink, ref = read_ink_and_truth(path)  # a missing or unreadable reference is None, never an error
    try:
        feats, norm = featurize_ink(ink, cfg)
    except CorpusError:
        raise
    except LstmAsrError as exc:
        raise CorpusError(path, str(exc)) from None
    try:
        lp = rec.ink_log_probs(ink, torch.from_numpy(feats))
    except CorpusError:
        raise
    except LstmAsrError as exc:
        raise CorpusError(path, str(exc)) from None
    hyp = rec.search_one(lp, beam)
    t = norm.points()[:, 2] + float(ink.points()[0, 2])
    frames = list(hyp.frames) if hyp.frames else [0] * len(hyp.tokens)
    ends = frames[1:] + [len(t) - 1] if frames else []
    times = [(float(t[f]), float(t[min(e, len(t) - 1)])) for f, e in zip(frames, ends, strict=True)]
    tokens = [rec.tokens[i] for i in hyp.tokens]
    transcript = Transcript(str(path), tokens, times, float(hyp.score), ink.duration, "chars")
    if ref is None:
        return InkResult(transcript)
    labels, unknown = reference_labels(ref, rec.tokens)
    _, counts = align(labels, tokens)
    return InkResult(transcript, " ".join(ref.split()), counts.rate * 100, unknown)


def decode_ink_files(rec: Recognizer, files: list[Path], beam: int = 1, as_json: bool = False) -> None:
    """Print one line per file (``file<TAB>text``, plus the CER when the file has a transcription); a bad file
    is reported on stderr and the others still decode. Transcriptions with characters the model cannot write are
    scored as they are and noted once, at the end, on stderr."""
    failed = 0
    unknown = UnknownCharacters()
    for f in files:
        try:
            result = transcribe_ink(rec, f, beam=beam)
        except LstmAsrError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        unknown.add(result)
        if as_json:
            print(json.dumps(result.to_dict()), flush=True)
        else:
            extra = f"\tCER {result.cer:.2f}% (ref: {result.reference})" if result.reference is not None else ""
            print(f"{f}\t{result.transcript.text}{extra}", flush=True)
    if unknown.lines:
        print(unknown.note(), file=sys.stderr)
    if failed:
        raise LstmAsrError(f"{failed} of {len(files)} files could not be decoded")


def render_file(ink_path: Path, out: Path, model: Path | None = None) -> str:
    """Draw a pen-stroke file to PNG with the recognised text (with ``model``) or its transcription beneath."""
    from lstm_asr.data.ink_render import render_ink

    ink, ref = read_ink_and_truth(ink_path)
    text = ref
    if model is not None:
        text = transcribe_ink(Recognizer.load(model), ink_path).transcript.text
    info = render_ink(ink, out, text=text)
    return (f"wrote {out}: {len(info.pixels)} points in {info.strokes} strokes, {info.size[0]}x{info.size[1]} px"
            + (f"; text: {text}" if text else ""))
