"""A folder of recordings: audio files (``.wav``, ``.flac``, ``.ogg``, any depth) with a same-named transcript
beside each (``x.wav`` + ``x.txt`` or ``x.lab``), or one prompts file for all of them.

The layout of most small voice datasets: Kathleen (``data/arctic_a0001_1592748574.{wav,txt}``, 48 kHz stereo,
several takes of a prompt), or a wav-only copy of CMU ARCTIC (``bdl/arctic_a0001.wav``) with ARCTIC's prompt list
given as ``corpus.prompts`` (``cmuarctic.data``; Kathleen's repository ships it). A file's transcript is its own
``.txt``/``.lab`` (the text, a line or several), else the prompt its name starts with (``prompt_for``); the
sentence that decides its split is that prompt when there is one (so a take with a clipped transcript still goes
where its prompt goes), else the transcript.

Speakers: the folders directly below ``corpus.path`` when the audio is spread over several (``arctic/bdl``,
``arctic/slt``), else the folder ``corpus.path`` names (``kathleen``) -- point it at a folder named for the talker.
Splits: :mod:`data_prep.heldout`.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.sources import register_source
from lstm_asr.errors import CorpusError

from .recorded import RecordedSpeechSource, Recording, find_audio, prompt_for, read_prompts
from .text_corpus import Listing

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
_MAX_TRANSCRIPT_BYTES = 1 << 16


def read_transcript(path: Path) -> str:
    """A transcript file's text (its lines joined by spaces); a one-line error for a file that is not text."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_TRANSCRIPT_BYTES + 1)
    except OSError as exc:
        raise CorpusError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_TRANSCRIPT_BYTES:
        raise CorpusError(path, f"larger than {_MAX_TRANSCRIPT_BYTES} bytes; not a transcript")
    try:
        return " ".join(data.decode("utf-8-sig").split())
    except UnicodeDecodeError as exc:
        raise CorpusError(path, f"not a text file (byte {exc.start} is not valid UTF-8)") from None


@register_source
class AudioFolderSource(RecordedSpeechSource):
    """Audio files with same-named transcripts or a prompts file."""

    kind = "audio_folder"

    def speaker_of(self, audio: Path, speakers_below: bool) -> str:
        return audio.relative_to(self.root).parts[0] if speakers_below else self.root.resolve().name

    def recordings(self) -> Listing:
        if not self.root.is_dir():
            raise CorpusError(self.root, "not a folder")
        prompts = read_prompts(self.prompts_path) if self.prompts_path is not None else {}
        files = find_audio(self.root)
        if not files:
            raise CorpusError(self.root, "no audio files (.wav, .flac, .ogg) here")
        tops = {f.relative_to(self.root).parts[0] for f in files if len(f.relative_to(self.root).parts) > 1}
        speakers_below = len(tops) > 1 and all(len(f.relative_to(self.root).parts) > 1 for f in files)
        out = Listing()
        seen: dict[str, Path] = {}
        for audio in files:
            pid = prompt_for(audio.stem, prompts) if prompts else None
            own = next((audio.with_suffix(s) for s in TRANSCRIPT_SUFFIXES if audio.with_suffix(s).is_file()), None)
            try:
                text = read_transcript(own) if own is not None else prompts.get(pid or "", "")
            except CorpusError as exc:
                out.skipped.append((str(exc.path), exc.problem))
                continue
            if not text:
                out.skipped.append((str(audio), "no transcript (no .txt/.lab beside it, no prompt for its name)"))
                continue
            speaker = self.speaker_of(audio, speakers_below)
            utt = f"{speaker}_{audio.stem}"
            if utt in seen:  # x.wav and x.flac, or x.wav in two subfolders of one speaker
                raise CorpusError(audio, f"utterance id {utt!r} again (also {seen[utt]}): rename one of them")
            seen[utt] = audio
            sentence = prompts[pid] if pid is not None else text
            out.utterances.append(Recording(utt, speaker, str(audio), text, sentence=sentence))
        return out
