"""The LibriSpeech folder layout: ``<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` beside
``<speaker>-<chapter>-<utt>.flac`` files.

``corpus.path`` is the ``LibriSpeech`` folder; the split keys name its subsets (``train-clean-100``,
``dev-clean``, ``test-clean``). A transcript line is ``<utt-id> <TEXT>``; the audio is ``<utt-id>.flac`` (or
``.wav``) in the same folder. The speaker is the first folder level.
"""

from __future__ import annotations

from data_prep.sources import register_source
from lstm_asr.errors import CorpusError

from .text_corpus import Listing, TextCorpusSource, Utterance


@register_source
class LibriSpeechSource(TextCorpusSource):
    """A LibriSpeech-layout corpus (any subset folders)."""

    kind = "librispeech"

    def list_split(self, name: str) -> Listing:
        d = self.root / name
        if not d.is_dir():
            raise CorpusError(d, f"split '{name}' not found (expected a LibriSpeech subset folder)")
        out = Listing()
        seen: dict[str, str] = {}
        trans_files = sorted(d.glob("*/*/*.trans.txt"))
        if not trans_files:
            raise CorpusError(d, "no <speaker>/<chapter>/*.trans.txt transcripts found")
        for trans in trans_files:
            speaker = trans.parent.parent.name
            try:
                lines = trans.read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                out.skipped.append((str(trans), f"unreadable transcript ({exc})"))
                continue
            for n, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                parts = line.split(maxsplit=1)
                utt = parts[0]
                where = f"{trans}:{n}"
                if utt in seen:
                    raise CorpusError(trans, f"line {n}: duplicate utterance id {utt!r} (also in {seen[utt]})")
                seen[utt] = where
                if len(parts) < 2:
                    out.skipped.append((where, "no transcript"))
                    continue
                audio = next((p for p in (trans.parent / f"{utt}.flac", trans.parent / f"{utt}.wav")
                              if p.is_file()), None)
                if audio is None:
                    out.skipped.append((str(trans.parent / f"{utt}.flac"), "audio file not found"))
                    continue
                out.utterances.append(Utterance(utt, speaker, str(audio), parts[1]))
        return out
