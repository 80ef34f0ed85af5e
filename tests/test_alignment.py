"""Forced alignment against the generated utterances' .PHN intervals, TextGrid/CTM output, and bad transcripts."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from lstm_asr.decoding.alignment import forced_align, read_textgrid_intervals
from lstm_asr.errors import LstmAsrError
from lstm_asr.recognition.align_file import align_audio
from lstm_asr.recognition.recognizer import Recognizer

RATE = 16000


def read_phn(path: Path) -> list[tuple[float, float, str]]:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(int(b) / RATE, int(e) / RATE, p) for b, e, p in rows]


class LabelledOutputs:
    """Stands in for a trained model on one utterance: at every frame, the phone whose labelled interval holds the
    frame's centre (t * shift + window / 2) is 10 nats above every other class. ``rec`` gives the rest."""

    def __init__(self, rec: Recognizer, labelled: list[tuple[float, float, str]]) -> None:
        self.rec, self.labelled = rec, labelled
        self.features, self.tokens, self.units, self.frame_seconds = rec.features, rec.tokens, rec.units, \
            rec.frame_seconds

    def log_probs(self, wav: torch.Tensor) -> torch.Tensor:
        shift, window = self.frame_seconds, self.features.frame_length_ms / 1000
        scores = torch.zeros(self.features.num_frames(wav.numel()), len(self.tokens))
        for t in range(scores.shape[0]):
            centre = t * shift + window / 2
            phone = next(p for b, e, p in self.labelled if b <= centre < e)
            scores[t, self.tokens.index(phone)] = 10.0
        return torch.log_softmax(scores, dim=-1)


def test_forced_alignment_matches_phn_intervals(trained_exp: Path, tiny_corpus: Path) -> None:
    rec = Recognizer.load(trained_exp)
    shift = rec.features.frame_shift_ms / 1000
    window = rec.features.frame_length_ms / 1000
    inside = spikes_inside = total = 0
    boundary_errors = []
    wavs = sorted(tiny_corpus.glob("TRAIN/*/*/S[IX]*.WAV"))
    assert len(wavs) == 8
    for wav in wavs:
        labelled = read_phn(wav.with_suffix(".PHN"))
        phones = [p for _, _, p in labelled]
        # The trained model: the transcript's tokens in order, in intervals that tile the audio.
        intervals, duration = align_audio(rec, wav, phones)
        assert [a.token for a in intervals] == phones
        assert duration == pytest.approx(labelled[-1][1], abs=0.001)
        assert intervals[0].start == 0.0 and intervals[-1].end == duration
        assert all(a.end == b.start and a.start < a.end for a, b in zip(intervals, intervals[1:], strict=False))
        for a, (b, e, _) in zip(intervals, labelled, strict=True):
            # For information (where a trained model puts its spikes depends on how training went): the middle of
            # each aligned interval, and of the frames where CTC emits the token, inside the labelled phone?
            inside += b <= (a.start + a.end) / 2 <= e
            spikes_inside += b <= (a.span_start + a.span_end) / 2 * shift + window / 2 <= e
            total += 1
        boundary_errors += [abs(a.start - b) for a, (b, _, _) in zip(intervals[1:], labelled[1:], strict=True)]
        # Outputs that follow the labels frame by frame: every span is its phone's frames, so every boundary is
        # halfway between the centres of the two frames around the labelled one: within half a frame shift.
        exact, _ = align_audio(LabelledOutputs(rec, labelled), wav, phones)
        assert [a.token for a in exact] == phones
        for a, (b, e, _) in zip(exact, labelled, strict=True):
            assert abs(a.start - b) <= shift / 2 + 1e-9 and abs(a.end - e) <= shift / 2 + 1e-9, (a, b, e)
    print(f"forced alignment: {inside}/{total} phones' aligned interval centres inside the labelled interval "
          f"({spikes_inside}/{total} CTC spikes), median boundary error "
          f"{statistics.median(boundary_errors) * 1000:.1f} ms")


def test_forced_align_too_long_transcript_is_an_error() -> None:
    lp = torch.log_softmax(torch.randn(5, 4), dim=-1)
    assert len(forced_align(lp, [1, 2, 3])) == 3
    with pytest.raises(LstmAsrError, match=r"^utt\.wav: transcript of 3 tokens needs at least 5 frames"):
        forced_align(lp[:4], [1, 1, 1], source="utt.wav")  # repeats need blanks between them


def test_align_cli_textgrid_ctm_and_errors(trained_exp: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    wav = sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0]
    phones = [p for _, _, p in read_phn(wav.with_suffix(".PHN"))]
    out = tmp_path / "out.TextGrid"
    res = run_cli("align", "--model", str(trained_exp), str(wav), " ".join(phones), "-o", str(out))
    assert res.returncode == 0, res.stderr
    rows = read_textgrid_intervals(out)
    assert [t for _, _, t in rows if t] == phones
    assert rows[0][0] == 0.0 and all(a[1] == pytest.approx(b[0]) for a, b in zip(rows, rows[1:], strict=False))
    assert out.read_text().startswith('File type = "ooTextFile"\nObject class = "TextGrid"')

    ctm = run_cli("align", "--model", str(trained_exp), str(wav), " ".join(phones), "--format", "ctm")
    assert ctm.returncode == 0, ctm.stderr
    lines = [line.split() for line in ctm.stdout.splitlines()]
    assert [x[4] for x in lines] == phones and all(x[0] == wav.stem and float(x[3]) > 0 for x in lines)

    too_long = run_cli("align", "--model", str(trained_exp), str(wav), " ".join(phones * 60))
    assert too_long.returncode == 1
    assert too_long.stderr.count("\n") == 1 and str(wav) in too_long.stderr and "too long" in too_long.stderr
    unknown = run_cli("align", "--model", str(trained_exp), str(wav), "h# zz h#")
    assert unknown.returncode == 1 and "zz" in unknown.stderr and unknown.stderr.count("\n") == 1
