"""Kaldi data directories: ``wav.scp``, ``text``, ``utt2spk`` and optional ``segments``, one folder per split.

``corpus.path`` is the folder that holds the split folders (Kaldi's/ESPnet's ``data/``); ``corpus.train_split``
etc. name them (``train_960``, ``dev_clean``, ...). ``wav.scp`` lines are ``<id> <file>`` or a pipe
``<id> <command> |``; pipes run a shell command and are refused unless the recipe sets
``corpus.allow_commands: true``. Relative file paths are taken from the current directory, as Kaldi does. With
``segments`` (``<utt> <recording> <start> <end>``, end -1 = to the end of the file), ``wav.scp`` is keyed by
recording and the other files by utterance. Without ``utt2spk`` every utterance is its own speaker.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.sources import register_source
from lstm_asr.errors import CorpusError

from .text_corpus import Listing, TextCorpusSource, Utterance, check_unique


def read_table(path: Path) -> dict[str, tuple[str, int]]:
    """``<key> <rest of line>`` per line -> {key: (rest, line number)}; a duplicate key is a one-line error."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise CorpusError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(path, f"cannot read ({exc})") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        rows.append((parts[0], n, parts[1] if len(parts) > 1 else ""))
    check_unique([(k, n) for k, n, _ in rows], path)
    return {k: (rest, n) for k, n, rest in rows}


@register_source
class KaldiDirSource(TextCorpusSource):
    """A Kaldi data directory per split."""

    kind = "kaldi_dir"

    def audio_file(self, entry: str) -> str:
        """The file a wav.scp entry names: relative paths from the current folder, as Kaldi takes them."""
        return entry

    def list_split(self, name: str) -> Listing:
        d = self.root / name
        if not (d / "wav.scp").is_file():
            raise CorpusError(d, f"not a Kaldi data directory for split '{name}' (no wav.scp)")
        wav = read_table(d / "wav.scp")
        text = read_table(d / "text")
        spk = read_table(d / "utt2spk") if (d / "utt2spk").is_file() else {}
        out = Listing()
        audio: dict[str, tuple[str, str | None]] = {}  # recording -> (path, command)
        for rec, (entry, n) in wav.items():
            if entry.endswith("|"):
                if not self.allow_commands:
                    raise CorpusError(d / "wav.scp", f"line {n}: piped command refused (set corpus.allow_commands: "
                                      "true in the recipe to run wav.scp commands)")
                audio[rec] = (f"{d / 'wav.scp'}:{rec}", entry)
            elif not entry:
                out.skipped.append((f"{d / 'wav.scp'}:{n}", "no audio file named"))
            elif not Path(self.audio_file(entry)).is_file():
                out.skipped.append((self.audio_file(entry), "audio file not found"))
            else:
                audio[rec] = (self.audio_file(entry), None)
        if (d / "segments").is_file():
            segs: dict[str, tuple[str, float | None, float | None]] = {}
            for utt, (rest, n) in read_table(d / "segments").items():
                f = rest.split()
                try:
                    rec, start, end = f[0], float(f[1]), float(f[2])
                except (IndexError, ValueError):
                    raise CorpusError(d / "segments", f"line {n}: expected '<utt> <recording> <start> <end>'") \
                        from None
                if start < 0 or (end >= 0 and end <= start):
                    out.skipped.append((f"{d / 'segments'}:{n}", "segment end before its start"))
                    continue
                segs[utt] = (rec, start, end if end >= 0 else None)
        else:
            segs = {utt: (utt, None, None) for utt in wav}
        for utt, (rec, start, end) in segs.items():
            if rec not in audio:
                if rec not in wav:
                    out.skipped.append((f"{d / 'segments'}:{utt}", "recording not in wav.scp"))
                continue  # already skipped (and counted) as unreadable audio
            if utt not in text or not text[utt][0].strip():
                out.skipped.append((f"{d / 'text'}:{utt}", "no transcript"))
                continue
            path, command = audio[rec]
            speaker = spk[utt][0] if utt in spk else utt
            if start is not None and end is None:
                end = -1.0  # "to the end": keep the item segmented so its id is reported with the file
            out.utterances.append(Utterance(utt, speaker, path, text[utt][0], start, end, command))
        for utt in sorted(set(text) - set(segs)):
            out.skipped.append((f"{d / 'text'}:{utt}", "no audio in wav.scp" if not (d / "segments").is_file()
                                else "no entry in segments"))
        return out
