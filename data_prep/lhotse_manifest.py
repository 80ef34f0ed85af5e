"""Lhotse manifests (icefall, k2, ``lhotse prepare``): a ``CutSet``, or a ``RecordingSet`` and a ``SupervisionSet``,
per split, as JSON lines (``.jsonl`` or ``.jsonl.gz``).

``corpus.path`` is the folder of the manifests. A split ``S`` is ``cuts_S.jsonl[.gz]`` (or one ``<prefix>_cuts_S``
file, icefall's ``librispeech_cuts_train-clean-100.jsonl.gz``); without one, the pair ``recordings_S`` +
``supervisions_S`` (same naming). The JSON is read directly, following Lhotse's documented serialisation, so
training needs no Lhotse installed; ``lhotse`` itself writes what the tests read.

- **Utterances** are supervisions: the supervision's id, speaker (else its id) and text. With
  ``corpus.alignment: phone`` (and ``corpus.units: phones``) the labels are the symbols of the supervision's
  ``phone`` alignment instead, e.g. from a forced aligner.
- **Parts of recordings**: a supervision covers ``start`` .. ``start + duration`` of its recording (in a cut,
  ``start`` counts from the cut's start, and the span is clipped to the cut). A span that is the whole recording
  reads the whole file.
- **Channels**: ``corpus.channel: N`` trains on recording channel N; the default (-1) takes the supervision's own
  ``channel`` (a list of channels, or none named: those channels averaged; Lhotse's MultiCut).
- **Audio sources**: ``file`` (relative paths as Lhotse takes them, from the current directory; failing that, from
  the manifest's folder) and ``command`` (a shell command writing audio to stdout; refused unless
  ``corpus.allow_commands: true``). ``url`` and ``memory`` sources are skipped (nothing is fetched), as are
  recordings with transforms other than ``Resample`` (speed or volume perturbation changes the audio) and
  ``MixedCut`` s (overlapped tracks).
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from pathlib import Path
from typing import Any

from data_prep.sources import register_source
from lstm_asr.errors import CorpusError, LstmAsrError

from .text_corpus import Listing, TextCorpusSource, Utterance, check_unique

# A span within this much of the recording's ends is the whole recording (rounding in the manifest's times).
WHOLE_TOLERANCE_S = 0.5 / 16000


class Skip(Exception):
    """A manifest entry that cannot be used; the message is the skip reason."""


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, value) of a JSON-lines file, gzip-compressed when its name ends in ``.gz``; a line that is
    not JSON is a one-line error."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, EOFError, zlib.error) as exc:
        raise CorpusError(path, f"cannot read manifest ({exc})") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(path, f"not UTF-8 text (byte {exc.start})") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CorpusError(path, f"line {n}: not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})") \
                from None
    return rows


def manifest_file(root: Path, kind: str, split: str) -> Path | None:
    """``<kind>_<split>.jsonl[.gz]`` in ``root``, or the one ``<prefix>_<kind>_<split>.jsonl[.gz]``; None if none."""
    for suffix in (".jsonl.gz", ".jsonl"):
        exact = root / f"{kind}_{split}{suffix}"
        if exact.is_file():
            return exact
    found = sorted({*root.glob(f"*_{kind}_{split}.jsonl.gz"), *root.glob(f"*_{kind}_{split}.jsonl")})
    if len(found) > 1:
        raise CorpusError(root, f"several {kind} manifests for split '{split}' ({', '.join(p.name for p in found)}); "
                          "point corpus.path at a folder with one")
    return found[0] if found else None


# --- typed access to the JSON of one entry (every problem becomes a Skip with its reason) -------------------------


def _number(obj: dict, key: str, default: float | None = None) -> float:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Skip(f"'{key}' is not a number")
    return float(value)


def _text(obj: dict, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise Skip(f"no '{key}'")
    return value


def _channels(value: Any, what: str) -> list[int] | None:
    """A Lhotse channel field (an int, a list of ints, or absent) as a list, or None when absent."""
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in values):
        raise Skip(f"{what} channel is not a channel number or list of them")
    return values


def alignment_symbols(sup: dict, kind: str) -> list[str]:
    """The symbols of a supervision's ``kind`` alignment: items ``[symbol, start, duration, score]`` (Lhotse's
    compact form) or ``{"symbol": ...}`` objects (older manifests)."""
    ali = sup.get("alignment")
    items = ali.get(kind) if isinstance(ali, dict) else None
    if not isinstance(items, list) or not items:
        raise Skip(f"no '{kind}' alignment")
    symbols = []
    for item in items:
        sym = item[0] if isinstance(item, list) and item else item.get("symbol") if isinstance(item, dict) else None
        if not isinstance(sym, str) or not sym or sym != "".join(sym.split()):
            raise Skip(f"'{kind}' alignment symbol is not a word")
        symbols.append(sym)
    return symbols


class Recording:
    """The parts of a Lhotse recording the reader uses: its audio sources, rate, length and channels."""

    def __init__(self, rec: Any, manifest: Path) -> None:
        if not isinstance(rec, dict):
            raise Skip("recording is not a JSON object")
        self.id = _text(rec, "id")
        self.rate = _number(rec, "sampling_rate")
        self.num_samples = _number(rec, "num_samples")
        if self.rate <= 0 or self.num_samples < 0:
            raise Skip("bad sampling_rate or num_samples")
        self.duration = self.num_samples / self.rate
        transforms = rec.get("transforms") or []
        names = [t.get("name") if isinstance(t, dict) else t for t in transforms] if isinstance(transforms, list) \
            else [transforms]
        if any(n != "Resample" for n in names):  # features resample anyway; anything else changes the audio
            raise Skip(f"recording transforms {names} are not applied")
        sources = rec.get("sources")
        if not isinstance(sources, list) or not sources or not all(isinstance(s, dict) for s in sources):
            raise Skip("recording has no audio sources")
        self.sources = []
        for src in sources:
            chans = _channels(src.get("channels"), "source")
            self.sources.append((str(src.get("type", "")), src.get("source"), chans or [0]))
        self.channel_ids = sorted({c for _, _, chans in self.sources for c in chans})
        self.manifest = manifest

    def audio(self, channels: list[int] | None, allow_commands: bool) -> tuple[str, str | None, tuple[int, ...] | None]:
        """(path, command, file channels to keep) for the recording channels ``channels`` (None: all)."""
        wanted = channels if channels is not None else self.channel_ids
        missing = [c for c in wanted if c not in self.channel_ids]
        if missing:
            raise Skip(f"recording has no channel {missing[0]}")
        owners = [(kind, src, chans) for kind, src, chans in self.sources if all(c in chans for c in wanted)]
        if not owners:
            raise Skip("the chosen channels are in separate files (choose one with corpus.channel)")
        kind, src, chans = owners[0]
        if not isinstance(src, str) or not src:
            raise Skip("audio source names no file")
        keep = None if sorted(wanted) == sorted(chans) else tuple(chans.index(c) for c in wanted)
        if kind == "file":
            path = Path(src)
            if not path.is_absolute() and not path.is_file() and (self.manifest.parent / path).is_file():
                path = self.manifest.parent / path  # Lhotse resolves from the current directory; we also try here
            if not path.is_file():
                raise Skip("audio file not found")
            return str(path), None, keep
        if kind == "command":
            if not allow_commands:
                raise CorpusError(self.manifest, f"recording {self.id!r}: command source refused (set "
                                  "corpus.allow_commands: true in the recipe to run it)")
            return f"{self.manifest}:{self.id}", src, keep
        raise Skip(f"audio source type {kind!r} is not read (only files and commands; nothing is fetched)")


@register_source
class LhotseSource(TextCorpusSource):
    """Lhotse CutSet, or RecordingSet + SupervisionSet, manifests per split."""

    kind = "lhotse"

    def __init__(self, root: Path, units: str = "", lexicon: str = "", bpe_vocab_size: int = 100,
                 allow_commands: bool = False, train_split: str = "train", channel: int = -1,
                 alignment: str = "") -> None:
        if channel < -1:
            raise LstmAsrError(f"corpus.channel: {channel} is not a channel (0, 1, ...; -1: the supervisions')")
        # Scoring and decoding resolve the units from corpus.type and corpus.units alone (lhotse's default: chars,
        # which would glue the phones into words), so alignment labels need the units said.
        if alignment and units != "phones":
            raise LstmAsrError(f"corpus.alignment: {alignment!r} labels are phone-like symbols; set corpus.units: "
                               f"phones (not {units or 'the default, chars'!r}) or leave corpus.alignment empty")
        super().__init__(root, units, lexicon, bpe_vocab_size, allow_commands, train_split)
        self.channel = channel
        self.alignment = alignment

    @classmethod
    def from_recipe(cls, root: Path, corpus=None) -> LhotseSource:
        if corpus is None:
            return cls(root)
        return cls(root, **cls.text_options(corpus), allow_commands=corpus.allow_commands, channel=corpus.channel,
                   alignment=corpus.alignment)

    def list_split(self, name: str) -> Listing:
        if not self.root.is_dir():
            raise CorpusError(self.root, "not a folder of Lhotse manifests")
        out = Listing()
        ids: list[tuple[str, int]] = []
        cuts = manifest_file(self.root, "cuts", name)
        if cuts is not None:
            for n, cut in read_jsonl(cuts):
                self._cut(cut, cuts, n, out, ids)
            check_unique(ids, cuts)
            return out
        recs_path = manifest_file(self.root, "recordings", name)
        sups_path = manifest_file(self.root, "supervisions", name)
        if recs_path is None or sups_path is None:
            raise CorpusError(self.root, f"no Lhotse manifests for split '{name}' (cuts_{name}.jsonl.gz, or "
                              f"recordings_{name} and supervisions_{name})")
        recordings: dict[str, Recording | str] = {}  # id -> recording, or the reason it cannot be used
        for n, rec in read_jsonl(recs_path):
            try:
                r = Recording(rec, recs_path)
                recordings[r.id] = r
            except Skip as why:
                rid = rec.get("id") if isinstance(rec, dict) else None
                if isinstance(rid, str):
                    recordings[rid] = str(why)
                else:
                    out.skipped.append((f"{recs_path}:{n}", str(why)))
        for n, sup in read_jsonl(sups_path):
            where = f"{sups_path}:{n}"
            rid = sup.get("recording_id") if isinstance(sup, dict) else None
            rec = recordings.get(rid) if isinstance(rid, str) else None
            if isinstance(sup, dict) and isinstance(sup.get("id"), str):
                ids.append((sup["id"], n))
            if rec is None or isinstance(rec, str):
                out.skipped.append((where, rec or "recording not in the recordings manifest"))
                continue
            self._supervision(sup, rec, 0.0, rec.duration, None, where, out)
        check_unique(ids, sups_path)
        return out

    def _cut(self, cut: Any, path: Path, n: int, out: Listing, ids: list[tuple[str, int]]) -> None:
        where = f"{path}:{n}"
        if not isinstance(cut, dict):
            out.skipped.append((where, "cut is not a JSON object"))
            return
        kind = cut.get("type", "MonoCut")
        if kind not in ("MonoCut", "MultiCut"):
            out.skipped.append((where, f"{kind} is not read (only MonoCut and MultiCut)"))
            return
        sups = cut.get("supervisions") or []
        if not isinstance(sups, list):
            out.skipped.append((where, "supervisions are not a list"))
            return
        ids.extend((s["id"], n) for s in sups if isinstance(s, dict) and isinstance(s.get("id"), str))
        try:
            if cut.get("recording") is None:
                raise Skip("cut has no recording (features only)")
            rec = Recording(cut["recording"], path)
            start = _number(cut, "start", 0.0)
            end = start + _number(cut, "duration")
            cut_channels = _channels(cut.get("channel"), "cut")
        except Skip as why:
            out.skipped.extend((f"{where} ({s.get('id') if isinstance(s, dict) else '?'})", str(why))
                               for s in sups or [{}])
            return
        for sup in sups:
            self._supervision(sup, rec, start, end, cut_channels, where, out)

    def _supervision(self, sup: Any, rec: Recording, offset: float, limit: float, cut_channels: list[int] | None,
                     where: str, out: Listing) -> None:
        """Add one supervision of ``rec`` (times from ``offset``, clipped at ``limit``) as an utterance."""
        try:
            if not isinstance(sup, dict):
                raise Skip("supervision is not a JSON object")
            utt = _text(sup, "id")
            where = f"{where} ({utt})"
            start = offset + _number(sup, "start")
            end = min(start + _number(sup, "duration"), limit)
            if start < 0 or end <= start:
                raise Skip("supervision span is empty or outside its cut")
            if self.alignment:
                text = " ".join(alignment_symbols(sup, self.alignment))
            else:
                text = sup.get("text")
                if not isinstance(text, str) or not text.strip():
                    raise Skip("no transcript")
            channels = [self.channel] if self.channel >= 0 else (_channels(sup.get("channel"), "supervision")
                                                                 or cut_channels)
            path, command, keep = rec.audio(channels, self.allow_commands)
        except Skip as why:
            out.skipped.append((where, str(why)))
            return
        speaker = sup.get("speaker")
        speaker = speaker if isinstance(speaker, str) and speaker else utt
        whole = start <= WHOLE_TOLERANCE_S and end >= rec.duration - WHOLE_TOLERANCE_S
        s, e = (None, None) if whole else (start, end)
        out.utterances.append(Utterance(utt, speaker, path, text, s, e, command, keep))
