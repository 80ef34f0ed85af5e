"""CSV or JSON-lines manifests: one utterance per row with ``path`` and ``text``, optional ``id``, ``speaker``,
``start`` and ``end`` (seconds, for a part of the file) and ``split``. NeMo's ``offset`` (with ``duration``) says the
same as ``start`` (and ``end`` = offset + duration); without an offset, NeMo's ``duration`` is the whole file's and
is not used.

``corpus.path`` is either one manifest file with a ``split`` column (rows whose split equals ``corpus.train_split``
etc.) or a folder of ``<split>.jsonl`` / ``<split>.csv`` / ``<split>.tsv`` files. ``audio_filepath`` (NeMo) and
``audio`` are accepted for ``path``; relative paths are taken from the manifest's folder. Without ``id`` the id is
the file name (plus the start time for parts); without ``speaker`` every utterance is its own speaker.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from data_prep.sources import register_source
from lstm_asr.errors import CorpusError

from .text_corpus import Listing, TextCorpusSource, Utterance, check_unique

PATH_KEYS = ("path", "audio_filepath", "audio")
SUFFIXES = (".jsonl", ".csv", ".tsv")


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) of a JSONL, CSV or TSV file; a malformed JSON line is a one-line error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read manifest ({exc})") from None
    if path.suffix == ".jsonl" or path.suffix == ".json":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(path, f"line {n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise CorpusError(path, f"line {n}: expected a JSON object")
            rows.append((n, row))
        return rows
    reader = csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ",")
    return [(n, row) for n, row in enumerate(reader, 2)]  # line 1 is the header


@register_source
class ManifestSource(TextCorpusSource):
    """A CSV/JSONL manifest (one file with a split column, or one file per split)."""

    kind = "manifest"

    def _file_rows(self, name: str) -> tuple[Path, list[tuple[int, dict]]]:
        if self.root.is_file():
            rows = read_rows(self.root)
            if rows and "split" not in rows[0][1]:
                raise CorpusError(self.root, "no 'split' column (add one, or give a folder of <split>.jsonl files)")
            return self.root, [(n, r) for n, r in rows if str(r.get("split", "")) == name]
        for suffix in SUFFIXES:
            f = self.root / f"{name}{suffix}"
            if f.is_file():
                return f, read_rows(f)
        raise CorpusError(self.root, f"no manifest for split '{name}' ({', '.join(name + s for s in SUFFIXES)})")

    def list_split(self, name: str) -> Listing:
        path, rows = self._file_rows(name)
        out = Listing()
        entries = []
        for n, row in rows:
            where = f"{path}:{n}"
            audio = next((str(row[k]) for k in PATH_KEYS if row.get(k)), "")
            text = str(row.get("text") or "").strip()
            if not audio:
                out.skipped.append((where, "no audio path"))
                continue
            try:
                start = float(row["start"]) if row.get("start") not in (None, "") else None
                end = float(row["end"]) if row.get("end") not in (None, "") else None
                if start is None and row.get("offset") not in (None, ""):  # NeMo: offset + duration
                    start = float(row["offset"])
                    end = start + float(row["duration"]) if row.get("duration") not in (None, "") else None
            except (TypeError, ValueError):
                out.skipped.append((where, "start/end are not numbers"))
                continue
            audio_path = Path(audio) if Path(audio).is_absolute() else path.parent / audio
            utt = str(row.get("id") or (audio_path.stem + (f"_{start:.2f}" if start is not None else "")))
            entries.append((utt, n))
            if not text:
                out.skipped.append((where, "no transcript"))
                continue
            if not audio_path.is_file():
                out.skipped.append((str(audio_path), "audio file not found"))
                continue
            if start is not None and end is not None and end <= start:
                out.skipped.append((where, "segment end before its start"))
                continue
            speaker = str(row.get("speaker") or utt)
            out.utterances.append(Utterance(utt, speaker, str(audio_path), text, start, end))
        check_unique(entries, path)
        return out
