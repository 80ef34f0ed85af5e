"""``lstm-asr align``: force-align a known transcript to an audio file with a loaded model (CTC models).

The alignment itself and its TextGrid / CTM forms are :mod:`lstm_asr.decoding.alignment`'s; this reads the audio,
spells the transcript in the model's tokens and checks it against them.
"""

from __future__ import annotations

from pathlib import Path

from data_prep.audio import load_audio
from data_prep.units import WORD_SEP
from lstm_asr.decoding.alignment import AlignedToken, forced_align, spans_to_intervals
from lstm_asr.errors import LstmAsrError


def align_audio(recognizer, audio: str | Path, transcript: str | list[str],
                source: str | None = None) -> tuple[list[AlignedToken], float]:
    """Force-align a transcript to an audio file with a loaded
    :class:`~lstm_asr.recognition.recognizer.Recognizer`: space-separated tokens (phone models), plain text
    (character models), or a list of tokens. Returns the token intervals and the audio duration.

    Errors (unknown token, transcript too long for the audio) name ``source`` (default: the audio file).
    """
    if getattr(recognizer, "transducer", None) is not None:  # any object with log_probs() may stand in (tests)
        recognizer.require_ctc("forced alignment (lstm-asr align)")
    source = source or str(audio)
    if isinstance(transcript, str):
        # Character models spell words with "|" between them: "hello world" -> h e l l o | w o r l d.
        chars = recognizer.units == "chars"
        symbols = list(WORD_SEP.join(transcript.split())) if chars else transcript.split()
    else:
        symbols = list(transcript)
    index = {s: i for i, s in enumerate(recognizer.tokens)}
    unknown = [s for s in symbols if s not in index or index[s] == 0]
    if unknown:
        raise LstmAsrError(f"{source}: transcript token(s) not in the model's tokens: "
                           f"{', '.join(dict.fromkeys(unknown))}")
    feats = recognizer.features
    wav = load_audio(audio, feats.sample_rate)
    duration = wav.numel() / feats.sample_rate
    lp = recognizer.log_probs(wav)
    spans = forced_align(lp, [index[s] for s in symbols], source=source)
    intervals = spans_to_intervals(spans, recognizer.tokens, lp.shape[0], recognizer.frame_seconds,
                                   feats.frame_length_ms / 1000, duration)
    return intervals, duration
