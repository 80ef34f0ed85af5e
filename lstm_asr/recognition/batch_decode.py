"""Decoding many audio files: folders and list files in, transcripts (or N-best lists) and a summary out.

Inputs are expanded in order: a folder gives every audio file under it (sorted), a list file (``.lst``,
``.list``, ``.scp``, ``.txt``: one path per line, relative to the list's folder, ``#`` comments allowed) gives
its entries, anything else is taken as an audio file. Files are featurised one by one, and the network runs on
padded batches of them (the BLSTM is much faster per frame in batches). A file that cannot be read is
reported and counted, never a reason to stop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lstm_asr.decoding.search import Result, Searcher
from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.long_decode import WindowConfig, is_long, windowed_log_probs

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".sph", ".nist", ".aiff", ".aif", ".au", ".mp3", ".opus"}
LIST_SUFFIXES = {".lst", ".list", ".scp", ".txt"}


def expand_inputs(paths: list[Path]) -> list[Path]:
    """The audio files named by ``paths`` (files, folders, list files), in order."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise LstmAsrError(f"{p}: no audio files in this folder")
            out += found
        elif p.suffix.lower() in LIST_SUFFIXES:
            try:
                lines = p.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise LstmAsrError(f"{p}: cannot read list file ({exc})") from None
            for lineno, line in enumerate(lines, start=1):
                entry = line.split("#", 1)[0].strip()
                if not entry:
                    continue
                f = Path(entry) if Path(entry).is_absolute() else p.parent / entry
                if not f.is_file():
                    raise LstmAsrError(f"{p}:{lineno}: no such audio file: {entry}")
                out.append(f)
        else:
            out.append(p)
    return out


@dataclass
class Decoded:
    """One file's result: its N-best list (best first), frames, and audio duration."""

    path: Path
    nbest: list[Result]
    num_frames: int
    duration: float


@dataclass
class Summary:
    files: int = 0
    decoded: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time / audio time."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else 0.0

    def to_dict(self) -> dict:
        return {"files": self.files, "decoded": self.decoded, "failed": len(self.failed),
                "audio_hours": round(self.audio_seconds / 3600, 4), "wall_seconds": round(self.wall_seconds, 3),
                "rtf": round(self.rtf, 4)}

    def line(self) -> str:
        return (f"{self.decoded} of {self.files} files decoded ({len(self.failed)} failed), "
                f"{self.audio_seconds / 3600:.3f} h of audio in {self.wall_seconds:.1f} s, RTF {self.rtf:.4f}")


def decode_files(recognizer, files: list[Path], searcher: Searcher, summary: Summary, batch_size: int = 16,
                 on_error: Callable[[Path, str], None] | None = None,
                 progress: Callable[[int], None] | None = None,
                 window: WindowConfig | None = None) -> Iterator[Decoded]:
    """Decode ``files`` in order, ``batch_size`` at a time; failures go to ``summary.failed`` and ``on_error``.

    ``progress(n)`` is called after each batch with the number of files it held. Recordings longer than ``window``
    (a window with its two contexts) are decoded on their own, window by window, in bounded memory
    (:mod:`lstm_asr.recognition.long_decode`); shorter ones exactly as a whole.
    """
    from data_prep.audio import load_audio
    from lstm_asr.data.features import compute_features

    feats_cfg = recognizer.features
    model = recognizer.model  # None for an exported TorchScript file: it decodes one waveform at a time
    batchable = model is not None
    windowable = batchable and window is not None and window.enabled
    start = time.perf_counter()
    summary.files += len(files)

    def failed(f: Path, exc: LstmAsrError) -> None:
        summary.failed.append((str(f), str(exc)))
        if on_error:
            on_error(f, str(exc) if str(f) in str(exc) else f"{f}: {exc}")

    def done(f: Path, res: list[Result], n: int, dur: float) -> Decoded:
        summary.decoded += 1
        summary.audio_seconds += dur
        summary.wall_seconds = time.perf_counter() - start
        return Decoded(f, res, n, dur)

    for i in range(0, len(files), batch_size):
        chunk = files[i:i + batch_size]
        ok: list[tuple[Path, torch.Tensor, float]] = []
        for f in chunk:
            if windowable and is_long(f, feats_cfg, model.frame_reduction, window):
                # A long recording: the files before it first (output stays in order), then it alone, windowed.
                yield from _decode_batch(ok, model, batchable, searcher, done)
                ok = []
                try:
                    lp, dur = windowed_log_probs(model, feats_cfg, f, window)
                except LstmAsrError as exc:
                    failed(f, exc)
                    continue
                yield done(f, searcher(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0], lp.shape[0], dur)
                continue
            try:
                wav = load_audio(f, feats_cfg.sample_rate)
                dur = wav.numel() / feats_cfg.sample_rate
                x = compute_features(wav, feats_cfg) if batchable else recognizer.log_probs(wav)
            except LstmAsrError as exc:
                failed(f, exc)
                continue
            ok.append((f, x, dur))
        yield from _decode_batch(ok, model, batchable, searcher, done)
        summary.wall_seconds = time.perf_counter() - start
        if progress:
            progress(len(chunk))


def _decode_batch(ok: list[tuple[Path, torch.Tensor, float]], model, batchable: bool, searcher: Searcher,
                  done: Callable[[Path, list[Result], int, float], Decoded]) -> Iterator[Decoded]:
    """Run the network on a padded batch of features (or take the log-probs given) and search them."""
    if ok:
        lengths = torch.tensor([x.shape[0] for _, x, _ in ok])
        padded = torch.nn.utils.rnn.pad_sequence([x for _, x, _ in ok], batch_first=True)
        if batchable:
            with torch.inference_mode():
                padded = model(padded, lengths)
            lengths = model.output_lengths(lengths)  # fewer frames out when the model reduces the frame rate
        results = searcher(padded, lengths)
        for (f, _, dur), n, res in zip(ok, lengths.tolist(), results, strict=True):
            yield done(f, res, n, dur)


def result_dict(d: Decoded, symbols: list[str], units: str, shift_s: float, nbest: int) -> dict:
    """JSON-ready dict of one file: best text, score, per-token times; all hypotheses when ``nbest`` > 1."""
    from lstm_asr.recognition.recognizer import Transcript

    def transcript(r: Result) -> Transcript:
        frames = list(r.frames) if len(r.frames) == len(r.tokens) else [0] * len(r.tokens)
        ends = frames[1:] + [d.num_frames] if frames else []
        times = [(f * shift_s, e * shift_s) for f, e in zip(frames, ends, strict=True)]
        return Transcript(str(d.path), [symbols[i] for i in r.tokens], times, r.score, d.duration, units)

    best = d.nbest[0] if d.nbest else Result((), float("-inf"), ())
    out = transcript(best).to_dict()
    if best.words:
        out["text"] = " ".join(best.words)
    if nbest > 1:
        out["nbest"] = [{"text": " ".join(r.words) if r.words else transcript(r).text, "score": round(r.score, 4)}
                        for r in d.nbest]
    return out


def text_lines(d: Decoded, symbols: list[str], units: str, nbest: int) -> list[str]:
    """Plain-text output: ``file<TAB>text`` for the best, or ``file<TAB>rank<TAB>score<TAB>text`` per hypothesis."""
    from lstm_asr.recognition.recognizer import Transcript

    def text(r: Result) -> str:
        if r.words:
            return " ".join(r.words)
        return Transcript(str(d.path), [symbols[i] for i in r.tokens], [], r.score, d.duration, units).text

    if nbest <= 1:
        return [f"{d.path}\t{text(d.nbest[0]) if d.nbest else ''}"]
    return [f"{d.path}\t{k}\t{r.score:.4f}\t{text(r)}" for k, r in enumerate(d.nbest, start=1)]


def stderr_progress(total: int) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A rich progress bar on stderr (stdout stays clean for results); returns (advance, close)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(file=sys.stderr), transient=True)
    task = bar.add_task("decode", total=total)
    bar.start()
    return (lambda n: bar.advance(task, n)), bar.stop
