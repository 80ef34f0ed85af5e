"""``lstm-asr decode --stream``: audio from a microphone, a pipe or a file at real time, decoded as it arrives.

:func:`decode_stream` pulls blocks from a source (:mod:`data_prep.live_audio`), feeds them to one
:class:`~lstm_asr.recognition.stream_recognizer.Stream` and hands every update to a printer: a rich live line on a
terminal (the partial hypothesis rewritten in place, each final result kept as a line with its latency), one JSON
object per update with ``--json``, or the final results alone as plain lines when stdout is not a terminal.
Ctrl-C ends the input: the last segment is finished and printed like an end of file.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from lstm_asr.recognition.stream_recognizer import Stream, Update


@dataclass
class StreamSummary:
    """What one stream did: audio, segments, update latencies."""

    audio_seconds: float = 0.0
    segments: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return (f"{self.audio_seconds:.1f} s of audio, {self.segments} segment(s), {len(self.latencies_ms)} updates; "
                f"update latency median {np.median(lat):.0f} ms, 95th percentile {np.percentile(lat, 95):.0f} ms")


def decode_stream(stream: Stream, blocks: Iterable[tuple[np.ndarray, float]], emit: Callable[[Update], None]
                  ) -> StreamSummary:
    """Feed every block to ``stream`` and ``emit`` each update; the final result when the blocks end (or on
    Ctrl-C). Returns a summary."""
    summary = StreamSummary()

    def handle(update: Update) -> None:
        summary.latencies_ms.append(update.latency_ms)
        summary.segments += update.kind == "final"
        emit(update)

    try:
        for samples, arrived in blocks:
            for update in stream.feed(samples, arrived):
                handle(update)
    except KeyboardInterrupt:
        pass
    handle(stream.finish())
    summary.audio_seconds = stream.received / stream.rec.sample_rate
    return summary


def json_printer(update: Update) -> None:
    print(json.dumps(update.to_dict()), flush=True)


def plain_printer(update: Update) -> None:
    if update.kind == "final" and update.tokens:
        print(update.text, flush=True)


class LivePrinter:
    """A terminal line that shows the partial hypothesis as it changes; final results stay as lines above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.text import Text

        self.console = Console(stderr=False)
        self.text = Text
        self.live = Live(Text("listening ...", style="dim"), console=self.console, auto_refresh=False,
                         transient=True)
        self.live.start()

    def __call__(self, update: Update) -> None:
        note = f"  [{update.latency_ms:.0f} ms]"
        if update.kind == "final":
            if update.tokens:
                self.console.print(self.text(update.text, style="bold") + self.text(note, style="dim"))
            self.live.update(self.text("listening ...", style="dim"), refresh=True)
        else:
            self.live.update(self.text(update.text) + self.text(note, style="dim"), refresh=True)

    def close(self) -> None:
        self.live.stop()


def pick_printer(as_json: bool) -> Callable[[Update], None]:
    """JSON lines with ``--json``; a live line on a terminal; else the final results as plain lines."""
    if as_json:
        return json_printer
    if sys.stdout.isatty():
        return LivePrinter()
    return plain_printer


def decode_stream_command(files: list, model=None, beam: int | None = None, lm=None, lexicon=None,
                          lm_weight: float | None = None, word_score: float | None = None, threads: int = 0,
                          as_json: bool = False, realtime: bool = False, chunk_frames: int = 0,
                          right_context: int = -1, endpoint_seconds: float = 1.0, silence_db: float = -45.0,
                          device: str | None = None, quantize: str = "") -> StreamSummary:
    """What ``lstm-asr decode --stream`` does: pick the source (no file: the microphone; ``-``: standard input; a
    file, paced with ``realtime``), stream it through the model, print the updates and a summary on stderr."""
    from pathlib import Path

    import torch

    from data_prep.live_audio import PcmStream, file_blocks, microphone_blocks
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.errors import LstmAsrError
    from lstm_asr.recognition.recognizer import Recognizer, find_latest_experiment
    from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings

    if len(files) > 1:
        raise LstmAsrError("--stream decodes one source: a file, - for standard input, or nothing for the microphone")
    if realtime and (not files or str(files[0]) == "-"):
        raise LstmAsrError("--realtime paces a file; a microphone or a pipe is real time already")
    torch.set_num_threads(threads if threads > 0 else 1)  # one stream: one core keeps latency low and steady
    exp = model or find_latest_experiment()
    search = SearchConfig.for_experiment(exp, beam=beam, lm=lm, lexicon=lexicon, lm_weight=lm_weight,
                                         word_score=word_score)
    device_arg: str | int | None = int(device) if device is not None and device.isdigit() else device
    settings = StreamSettings(chunk_frames, right_context, endpoint_seconds, silence_db, search)
    rec = StreamingRecognizer(Recognizer.load(exp).quantize(quantize), settings)
    source = None
    if not files:
        blocks = microphone_blocks(rec.sample_rate, device_arg)
    elif str(files[0]) == "-":
        source = PcmStream(sys.stdin.buffer, rec.sample_rate)
        blocks = source.blocks()
    else:
        blocks = file_blocks(Path(files[0]), rec.sample_rate, realtime=realtime)
    printer = pick_printer(as_json)
    try:
        summary = decode_stream(rec.open(), blocks, printer)
    finally:
        if isinstance(printer, LivePrinter):
            printer.close()
    look = f"chunk {rec.chunk_frames} frames, look-ahead {rec.right_context} frames, {search.describe()}"
    print(f"summary: {summary.line()} [{look}]", file=sys.stderr)
    if source is not None and source.trailing_bytes:
        print(f"warning: stdin ended mid-sample: the last {source.trailing_bytes} byte(s) of an incomplete 16-bit "
              "sample were dropped", file=sys.stderr)
    return summary
