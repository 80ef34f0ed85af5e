"""CMU ARCTIC and other festvox voice folders: ``wav/<id>.wav``, ``etc/txt.done.data``, ``lab/<id>.lab``.

``corpus.path`` is one voice folder (``cmu_us_bdl_arctic``) or a folder holding several; each voice is a speaker,
named by its folder (``cmu_us_bdl_arctic`` -> ``bdl``). Transcripts are the festival prompt lines of
``etc/txt.done.data`` (``( arctic_a0001 "Author of the danger trail, Philip Steels, etc." )``); a voice without
one reads ``corpus.prompts`` (the same format; ARCTIC's prompt list is ``cmuarctic.data``). A wav without a prompt
line is skipped and counted (festvox's bdl has 1,132 wavs and 1,131 lines).

Phone labels come from ``lab/<id>.lab`` when the voice has it: festvox/xwaves label files (a header ended by a
``#`` line, then ``<end time> <colour> <phone>`` per line) in the radio phone set, mapped to TIMIT-61
(:mod:`data_prep.arpabet`: edge pauses -> ``h#``, closures added). Without ``lab/`` they come from the words
(:mod:`data_prep.lexicon`). Splits: :mod:`data_prep.heldout` (ARCTIC has no standard ones).
"""

from __future__ import annotations

import re
from pathlib import Path

from data_prep.arpabet import PhoneSetError, radio_phone, timed_labels
from data_prep.sources import register_source
from lstm_asr.errors import CorpusError

from .recorded import RecordedSpeechSource, Recording, find_audio, read_prompts
from .text_corpus import Listing, Utterance

_VOICE = re.compile(r"^cmu_[a-z]+_(.+)_arctic$")
_MAX_LAB_BYTES = 1 << 20


def voice_name(folder: Path) -> str:
    """The speaker a festvox voice folder holds: ``cmu_us_bdl_arctic`` -> ``bdl``, else the folder's name."""
    m = _VOICE.match(folder.name)
    return m.group(1) if m else folder.name


def is_voice(folder: Path) -> bool:
    """Whether ``folder`` is a festvox voice (it has ``wav/`` or ``etc/txt.done.data``)."""
    return (folder / "wav").is_dir() or (folder / "etc" / "txt.done.data").is_file()


def read_lab(path: Path) -> list[str]:
    """The phones of a festvox ``.lab`` file in order, as TIMIT-61 symbols (pauses as ``pau``).

    Lines before a ``#`` line are the header (when there is one); each label line is ``<end> <colour> <phone>``
    with ascending end times. A malformed line, a time going back or a phone outside the radio/TIMIT set is a
    one-line error naming the file and line."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_LAB_BYTES + 1)
    except OSError as exc:
        raise CorpusError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > _MAX_LAB_BYTES:
        raise CorpusError(path, f"larger than {_MAX_LAB_BYTES} bytes; not a label file")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise CorpusError(path, f"not a text file (byte {exc.start} is not valid UTF-8)") from None
    start = next((i + 1 for i, line in enumerate(lines) if line.strip() == "#"), 0)
    phones: list[str] = []
    last = float("-inf")
    for n, line in enumerate(lines[start:], start + 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise CorpusError(path, f"line {n}: expected '<end time> <colour> <phone>', got {line.strip()!r}")
        try:
            end = float(fields[0])
        except ValueError:
            raise CorpusError(path, f"line {n}: the end time is not a number: {fields[0]!r}") from None
        if not last <= end < float("inf"):  # NaN fails too
            raise CorpusError(path, f"line {n}: end time {fields[0]} is not finite or before the previous one")
        last = end
        try:
            phone = radio_phone(fields[2])
        except PhoneSetError as exc:
            raise CorpusError(path, f"line {n}: {exc}") from None
        if phone is not None:
            phones.append(phone)
    if not any(p != "pau" for p in phones):
        raise CorpusError(path, "no phone labels")
    return phones


@register_source
class ArcticSource(RecordedSpeechSource):
    """Festvox voice folders (CMU ARCTIC's seven voices, or any voice built with festvox)."""

    kind = "arctic"

    def voices(self) -> list[Path]:
        if is_voice(self.root):
            return [self.root]
        try:
            found = sorted(p for p in self.root.iterdir() if p.is_dir() and is_voice(p))
        except OSError as exc:
            raise CorpusError(self.root, f"cannot list: {exc.strerror or exc}") from None
        if not found:
            raise CorpusError(self.root, "no festvox voice folder here (one with wav/ and etc/txt.done.data)")
        return found

    def recordings(self) -> Listing:
        out = Listing()
        external = read_prompts(self.prompts_path) if self.prompts_path is not None else None
        speakers: dict[str, Path] = {}
        for voice in self.voices():
            speaker = voice_name(voice)
            if speaker in speakers:
                raise CorpusError(voice, f"a second voice named {speaker!r} (also {speakers[speaker]})")
            speakers[speaker] = voice
            done = voice / "etc" / "txt.done.data"
            prompts = read_prompts(done) if done.is_file() else external
            if prompts is None:
                raise CorpusError(voice, "no etc/txt.done.data (give the prompts with corpus.prompts)")
            wav_dir = voice / "wav" if (voice / "wav").is_dir() else voice
            for wav in find_audio(wav_dir):
                if wav.stem not in prompts:
                    out.skipped.append((str(wav), "no prompt line for this recording"))
                    continue
                text = prompts[wav.stem]
                out.utterances.append(Recording(f"{speaker}_{wav.stem}", speaker, str(wav), text, sentence=text))
        return out

    def own_phones(self, utt: Utterance) -> tuple[str, ...] | None:
        lab = Path(utt.path).parent.parent / "lab" / f"{Path(utt.path).stem}.lab"
        if not lab.is_file():
            return None
        return timed_labels(read_lab(lab))
