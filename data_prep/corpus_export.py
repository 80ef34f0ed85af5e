"""``lstm-asr corpus export``: any corpus lstm-asr reads, written as the manifests other toolkits read.

Formats (one set of files per split, under ``OUT``):

- ``lhotse``: ``recordings_<split>.jsonl.gz``, ``supervisions_<split>.jsonl.gz`` and ``cuts_<split>.jsonl.gz`` (one
  ``MonoCut``/``MultiCut`` per supervision), Lhotse's JSON written directly (no Lhotse needed to export).
  Supervisions carry the transcript as ``text``; for phone corpora the phones, space-separated (as ``lhotse prepare
  timit`` does), and, where the source knows their times (TIMIT's ``.PHN``), also as a ``phone`` alignment.
- ``kaldi``: a data directory per split, ``OUT/<split>/`` with ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, and
  ``segments`` when utterances are parts of recordings. wav.scp pipes of a Kaldi source stay pipes.
- ``nemo``: ``OUT/<split>.jsonl``, NeMo's manifest (``audio_filepath``, ``duration``, ``text``, ``offset`` for
  parts), plus ``id`` and ``speaker`` for lstm-asr's own manifest reader.

The transcript is the source's own text where it has one (Kaldi, LibriSpeech, manifests, Lhotse, Hugging Face),
else its labels: phones space-separated, characters and BPE glued back into words.

**Audio.** Audio files are referenced where they are, by absolute path. That includes TIMIT's SPHERE ``.WAV`` files:
Lhotse, NeMo and lstm-asr read uncompressed SPHERE through libsndfile, but Kaldi's own binaries read RIFF WAV only
(Kaldi's TIMIT recipe pipes through ``sph2pipe``), so for Kaldi give ``--convert-audio DIR``: every utterance is
then written as a 16-bit RIFF WAV file under ``DIR/<split>/`` holding exactly the audio lstm-asr trains on (its part
of the recording, its channel; exact for 16-bit sources such as TIMIT), and the manifests name those files. Audio
that is not a file of its own (a Hugging Face dataset's bytes, a wav.scp pipe for Lhotse and NeMo, one channel of a
multi-channel file for Kaldi and NeMo) is always written that way, under ``OUT/audio`` unless ``--convert-audio``
names a folder.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.sources import CorpusItem, CorpusSource, Waveform
from data_prep.sphere import MAGIC as SPHERE_MAGIC
from data_prep.sphere import read_sphere_header
from data_prep.units import tokens_to_words
from lstm_asr.errors import CorpusError, LstmAsrError, reporting_write_errors

FORMATS = ("lhotse", "kaldi", "nemo")


@dataclass
class ExportReport:
    """What the export did with one split."""

    split: str
    utterances: int = 0
    converted: int = 0  # utterances whose audio was written as WAV
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or id, reason)

    def summary(self) -> str:
        text = f"{self.split}: {self.utterances} utterances"
        if self.converted:
            text += f" ({self.converted} written as WAV)"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} (e.g. {self.skipped[0][0]}: {self.skipped[0][1]})"
        return text


@dataclass
class Entry:
    """One utterance as written: its audio file (or pipe), the part of it, and its recording's shape."""

    item: CorpusItem
    text: str
    recording: str  # recording id
    audio: str  # absolute file path, or a Kaldi pipe command
    is_command: bool
    rate: int
    num_samples: int
    channels: int  # channels of the file
    start: float  # seconds
    end: float
    alignment: list[tuple[str, float, float]] | None = None

    @property
    def whole(self) -> bool:
        return self.start == 0.0 and self.end == self.num_samples / self.rate


def file_shape(path: Path) -> tuple[int, int, int]:
    """(sample rate, samples per channel, channels) of an audio file, from its header."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SPHERE_MAGIC))
    except OSError as exc:
        raise CorpusError(path, f"cannot read audio: {exc.strerror or exc}") from None
    if head == SPHERE_MAGIC:
        h = read_sphere_header(path)
        return h.sample_rate, h.sample_count, h.channel_count
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types
        raise CorpusError(path, f"cannot decode audio: {exc}") from None
    return int(info.samplerate), int(info.frames), int(info.channels)


def transcripts(source: CorpusSource, split: str) -> dict[str, str]:
    """The source's own transcripts by utterance id (text corpora), or {} (then labels are written)."""
    listing = getattr(source, "listing", None)
    if listing is None:
        return {}
    return {u.utt_id: " ".join(u.text.split()) for u in listing(split).utterances}


def units_of_source(source: CorpusSource) -> str:
    return getattr(source, "units_name", "") or source.default_units


def safe_name(utt: str, taken: set[str]) -> str:
    """A file name for an utterance id (path separators and odd characters replaced), unique among ``taken``."""
    base = re.sub(r"[^\w.+-]", "_", utt).lstrip(".") or "utt"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


class Exporter:
    """Turns a split's items into :class:`Entry` s, converting audio to WAV where the format needs a file."""

    def __init__(self, source: CorpusSource, fmt: str, out: Path, convert_audio: Path | None) -> None:
        if fmt not in FORMATS:
            raise LstmAsrError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
        self.source, self.fmt, self.out = source, fmt, Path(out)
        self.convert_all = convert_audio is not None
        self.audio_dir = Path(convert_audio) if convert_audio is not None else self.out / "audio"
        self.timed: Callable[[CorpusItem], list[tuple[str, float, float]]] | None = getattr(
            source, "timed_labels", None)

    def entries(self, split: str, report: ExportReport) -> list[Entry]:
        listed = self.source.split(split)
        report.skipped.extend(listed.skipped)
        texts = transcripts(self.source, split)
        units = units_of_source(self.source)
        shapes: dict[str, tuple[int, int, int]] = {}
        rec_ids: dict[tuple[str, bool], str] = {}
        taken_recs: set[str] = set()
        taken_files: set[str] = set()
        out: list[Entry] = []
        for n, item in enumerate(listed.items):
            text = texts.get(item.utt_id) or " ".join(tokens_to_words(item.labels, units))
            try:
                if n == 0:
                    self._check_audio(item)
                entry = self._entry(item, text, split, shapes, taken_files)
            except CorpusError as exc:
                report.skipped.append((str(exc.path), exc.problem))
                continue
            if entry.whole:
                entry.recording = safe_name(item.utt_id, taken_recs)
            else:  # the utterances of one recording share it
                key = (entry.audio, entry.is_command)
                if key not in rec_ids:
                    # a pipe's item path is "<wav.scp>:<recording id>"
                    stem = str(item.path).rsplit(":", 1)[-1] if entry.is_command else Path(entry.audio).stem
                    rec_ids[key] = safe_name(stem, taken_recs)
                entry.recording = rec_ids[key]
            if self.timed is not None:
                try:
                    ali = self.timed(item)
                    entry.alignment = ali if [s for s, _, _ in ali] == list(item.labels) else None
                except CorpusError:
                    entry.alignment = None
            out.append(entry)
            report.converted += entry.audio.startswith(str(self.audio_dir.resolve()))
        report.utterances = len(out)
        return out

    def _check_audio(self, item: CorpusItem) -> None:
        raw = self.source.read(str(item.path), **item.audio_options())
        if not isinstance(raw, Waveform):
            raise LstmAsrError(f"corpus.type {self.source.kind} holds pen strokes, not audio: there is nothing to "
                               "export as speech manifests")

    def _entry(self, item: CorpusItem, text: str, split: str, shapes: dict, taken: set[str]) -> Entry:
        needs_file = (item.cell is not None or self.convert_all
                      or (item.command is not None and self.fmt != "kaldi")
                      or (item.channels is not None and self.fmt != "lhotse"))
        if needs_file:
            wave = self.source.read(str(item.path), **item.audio_options())
            path = (self.audio_dir / split / f"{safe_name(item.utt_id, taken)}.wav").resolve()
            with reporting_write_errors(path, "converted audio"):
                path.parent.mkdir(parents=True, exist_ok=True)
                pcm = np.clip(np.round(wave.samples * 32768.0), -32768, 32767).astype(np.int16)
                sf.write(path, pcm, wave.rate, subtype="PCM_16")
            n = len(wave.samples)
            return Entry(item, text, "", str(path), False, wave.rate, n, 1, 0.0, n / wave.rate)
        if item.command is not None:  # Kaldi keeps its pipe; its length is known by running it once
            key = f"|{item.command}"
            if key not in shapes:
                wave = self.source.read(str(item.path), command=item.command)
                shapes[key] = (wave.rate, len(wave.samples), 1)
            audio, is_command = item.command, True
        else:
            key = str(item.path.resolve())
            if key not in shapes:
                shapes[key] = file_shape(item.path)
            audio, is_command = key, False
        rate, num, chans = shapes[key]
        dur = num / rate
        start = item.start or 0.0
        end = dur if item.end is None or item.end < 0 else min(item.end, dur)
        if start >= end:
            raise CorpusError(item.path, f"segment {start:.2f}-{end:.2f} s is outside the audio ({dur:.2f} s)")
        return Entry(item, text, "", audio, is_command, rate, num, chans, start, end)


def _round(x: float) -> float:
    return round(x, 7)  # well below a sample at any rate; keeps the JSON short


def lhotse_manifests(entries: list[Entry]) -> tuple[list[dict], list[dict], list[dict]]:
    """(recordings, supervisions, cuts) as Lhotse's JSON objects."""
    recordings: dict[str, dict] = {}
    sups, cuts = [], []
    for e in entries:
        channel_ids = list(range(e.channels))
        recordings.setdefault(e.recording, {
            "id": e.recording,
            "sources": [{"type": "command" if e.is_command else "file", "channels": channel_ids,
                         "source": e.audio.rstrip().removesuffix("|").rstrip() if e.is_command else e.audio}],
            "sampling_rate": e.rate, "num_samples": e.num_samples, "duration": e.num_samples / e.rate,
            "channel_ids": channel_ids})
        chosen = list(e.item.channels) if e.item.channels is not None else channel_ids
        channel: int | list[int] = chosen[0] if len(chosen) == 1 else chosen
        sup = {"id": e.item.utt_id, "recording_id": e.recording, "start": _round(e.start),
               "duration": _round(e.end - e.start), "channel": channel, "text": e.text, "speaker": e.item.speaker}
        if e.alignment:
            sup["alignment"] = {"phone": [[s, _round(b), _round(d), None] for s, b, d in e.alignment]}
        sups.append(sup)
        cuts.append({"id": e.item.utt_id, "start": _round(e.start), "duration": _round(e.end - e.start),
                     "channel": channel, "supervisions": [{**sup, "start": 0.0}],
                     "recording": recordings[e.recording], "type": "MultiCut" if isinstance(channel, list)
                     else "MonoCut"})
    return list(recordings.values()), sups, cuts


def write_jsonl(path: Path, rows: list[dict]) -> None:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    with reporting_write_errors(path, "the manifest"):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".gz":
            with gzip.open(path, "wb") as f:
                f.write(data)
        else:
            path.write_bytes(data)


def write_kaldi(d: Path, entries: list[Entry]) -> None:
    """A Kaldi data directory; ``segments`` when any utterance is a part of its recording."""
    segmented = any(not e.whole for e in entries)
    wav = {}
    for e in entries:
        key = e.recording if segmented else e.item.utt_id
        wav[key] = e.audio  # a file path, or a pipe ("cmd ... |")
    lines = {
        "wav.scp": [f"{k} {v}" for k, v in wav.items()],
        "text": [f"{e.item.utt_id} {e.text}" for e in entries],
        "utt2spk": [f"{e.item.utt_id} {e.item.speaker}" for e in entries],
    }
    spk2utt: dict[str, list[str]] = {}
    for e in sorted(entries, key=lambda e: e.item.utt_id):
        spk2utt.setdefault(e.item.speaker, []).append(e.item.utt_id)
    lines["spk2utt"] = [f"{s} {' '.join(u)}" for s, u in spk2utt.items()]
    if segmented:
        lines["segments"] = [f"{e.item.utt_id} {e.recording} {_round(e.start)} {_round(e.end)}" for e in entries]
    for name, rows in lines.items():
        with reporting_write_errors(d / name, f"the Kaldi {name}"):
            d.mkdir(parents=True, exist_ok=True)
            (d / name).write_text("".join(r + "\n" for r in sorted(rows)), encoding="utf-8")  # Kaldi: sorted


def nemo_rows(entries: list[Entry]) -> list[dict]:
    rows = []
    for e in entries:
        row = {"audio_filepath": e.audio, "duration": _round(e.end - e.start), "text": e.text}
        if not e.whole:
            row["offset"] = _round(e.start)
        rows.append({**row, "id": e.item.utt_id, "speaker": e.item.speaker})
    return rows


def check_one_line_fields(entries: list[Entry]) -> list[Entry]:
    """Kaldi's tables are whitespace-separated lines: ids and speakers with spaces cannot be written."""
    for e in entries:
        for what, value in (("utterance id", e.item.utt_id), ("speaker", e.item.speaker)):
            if not value or value != "".join(value.split()):
                raise LstmAsrError(f"{what} {value!r} contains whitespace; a Kaldi data directory cannot hold it")
        if "\n" in e.text or "\r" in e.text:
            raise LstmAsrError(f"{e.item.utt_id}: the transcript has a line break")
    return entries


def export_corpus(source: CorpusSource, splits: list[str], fmt: str, out: str | Path,
                  convert_audio: str | Path | None = None) -> list[ExportReport]:
    """Write the ``splits`` of ``source`` as ``fmt`` (lhotse, kaldi, nemo) manifests under ``out``; with
    ``convert_audio`` every utterance's audio is written there as 16-bit WAV (see the module's notes)."""
    out = Path(out)
    exporter = Exporter(source, fmt, out, Path(convert_audio) if convert_audio else None)
    reports = []
    for split in dict.fromkeys(splits):
        report = ExportReport(split)
        entries = exporter.entries(split, report)
        if not entries:
            raise LstmAsrError(f"{source.root}: split '{split}' has no utterance to export ({report.summary()})")
        if fmt == "lhotse":
            recordings, sups, cuts = lhotse_manifests(entries)
            write_jsonl(out / f"recordings_{split}.jsonl.gz", recordings)
            write_jsonl(out / f"supervisions_{split}.jsonl.gz", sups)
            write_jsonl(out / f"cuts_{split}.jsonl.gz", cuts)
        elif fmt == "kaldi":
            write_kaldi(out / split, check_one_line_fields(entries))
        else:
            write_jsonl(out / f"{split}.jsonl", nemo_rows(entries))
        reports.append(report)
    return reports
