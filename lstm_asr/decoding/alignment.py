"""Token timing from CTC output: forced alignment of a known transcript, and Praat TextGrid / CTM output.

(Aligning an audio file with a loaded model: :mod:`lstm_asr.recognition.align_file`.)

CTC emits each token as a short spike somewhere inside the token, with blanks in between. A token's *span* is the
frames where the alignment emits it; its *interval* (what TextGrid and CTM show) ends halfway between its span
and the next one, so intervals tile the utterance. Frame ``t`` is centred at ``t * shift + window / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torchaudio.functional as AF

from lstm_asr.data.ctc_feasibility import ctc_min_frames
from lstm_asr.errors import LstmAsrError


@dataclass(frozen=True)
class AlignedToken:
    """A token with its CTC span (frames, end exclusive), interval in seconds, and mean frame log-prob."""

    token: str
    span_start: int
    span_end: int
    start: float
    end: float
    score: float


def forced_align(log_probs: torch.Tensor, targets: list[int], blank: int = 0, source: str = "<audio>") -> list[
        tuple[int, int, int, float]]:
    """Viterbi alignment of ``targets`` to (T, V) log-probs with ``torchaudio.functional.forced_align``.

    Returns ``(token_id, first_frame, end_frame_exclusive, mean_log_prob)`` per target token. A transcript
    that needs more frames than there are (one per token, plus a blank between repeats) is an error naming
    ``source``.
    """
    if not targets:
        raise LstmAsrError(f"{source}: empty transcript")
    time = log_probs.shape[0]
    need = ctc_min_frames(targets)
    if need > time:
        raise LstmAsrError(f"{source}: transcript of {len(targets)} tokens needs at least {need} frames, the audio "
                           f"gives {time}: too long to align (wrong transcript or audio?)")
    lp = log_probs.detach().to("cpu", torch.float32).unsqueeze(0).contiguous()
    tgt = torch.tensor([targets], dtype=torch.int32)
    frames, scores = AF.forced_align(lp, tgt, blank=blank)
    spans = AF.merge_tokens(frames[0], scores[0].exp(), blank=blank)
    if len(spans) != len(targets):  # cannot happen with a feasible alignment; guards torchaudio changes
        raise LstmAsrError(f"{source}: alignment produced {len(spans)} spans for {len(targets)} tokens")
    frame_lp = scores[0]
    return [(s.token, s.start, s.end, float(frame_lp[s.start:s.end].mean())) for s in spans]


def spans_to_intervals(spans: list[tuple[int, int, int, float]], symbols: list[str], num_frames: int,
                       shift_s: float, window_s: float, duration: float) -> list[AlignedToken]:
    """Turn CTC spans into intervals that tile the audio: the boundary between two tokens is the middle of the
    blank frames between their spans (on generated TIMIT-layout data this halves the boundary error of taking
    each span's first frame), the first token starts at 0 and the last ends with the audio."""

    def at(frame: float) -> float:
        return min(max(frame * shift_s + window_s / 2, 0.0), duration)

    bounds = [0.0] + [at((spans[i - 1][2] + spans[i][1]) / 2 - 0.5) for i in range(1, len(spans))] + [duration]
    return [AlignedToken(symbols[tok], s, e, bounds[i], bounds[i + 1], score)
            for i, (tok, s, e, score) in enumerate(spans)]


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def textgrid(intervals: list[AlignedToken], duration: float, tier: str = "phones") -> str:
    """A Praat TextGrid (long text format) with one interval tier; uncovered time becomes empty intervals."""
    rows: list[tuple[float, float, str]] = []
    cursor = 0.0
    for a in intervals:
        if a.start > cursor + 1e-9:
            rows.append((cursor, a.start, ""))
        rows.append((a.start, a.end, a.token))
        cursor = a.end
    if cursor < duration - 1e-9:
        rows.append((cursor, duration, ""))
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {duration:.6f}",
             "tiers? <exists>", "size = 1", "item []:", "    item [1]:", '        class = "IntervalTier"',
             f"        name = {_quote(tier)}", "        xmin = 0", f"        xmax = {duration:.6f}",
             f"        intervals: size = {len(rows)}"]
    for i, (s, e, text) in enumerate(rows, start=1):
        lines += [f"        intervals [{i}]:", f"            xmin = {s:.6f}", f"            xmax = {e:.6f}",
                  f"            text = {_quote(text)}"]
    return "\n".join(lines) + "\n"


def ctm(intervals: list[AlignedToken], utt_id: str, channel: str = "1") -> str:
    """NIST CTM lines: ``utt channel start duration token confidence`` (confidence = mean frame probability)."""
    import math

    return "".join(f"{utt_id} {channel} {a.start:.3f} {a.end - a.start:.3f} {a.token} {math.exp(a.score):.4f}\n"
                   for a in intervals)


def read_textgrid_intervals(path: str | Path) -> list[tuple[float, float, str]]:
    """The (xmin, xmax, text) intervals of a TextGrid written by :func:`textgrid` (for checks and tests)."""
    rows: list[tuple[float, float, str]] = []
    cur: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines()[14:]:
        line = line.strip()
        if "=" in line:
            key, value = (x.strip() for x in line.split("=", 1))
            cur[key] = value
            if key == "text":
                rows.append((float(cur["xmin"]), float(cur["xmax"]), value[1:-1].replace('""', '"')))
    return rows
