"""Small generated corpora with text transcripts, in the LibriSpeech layout, as Kaldi data dirs, and as manifests.

The audio is fake_timit's learnable tones: each letter of a word is one tone (a, i, u, s, m, r, f), words are
separated by a short stretch of faint noise, so a tiny BLSTM learns characters and word boundaries in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from fake_timit import SAMPLE_RATE, _synthesize

LETTER_TONES = {"a": "aa", "i": "iy", "u": "uw", "s": "s", "m": "m", "r": "r", "f": "f"}
LETTERS = tuple(LETTER_TONES)


# The first utterance of every split's first speaker: all letters, so any split's characters are in training's.
ALL_LETTERS = ["aiu", "smr", "f"]


def make_utterance(rng: np.random.Generator, pitch: float = 1.0,
                   words: list[str] | None = None) -> tuple[np.ndarray, str]:
    """Audio and an upper-case transcript of 1-3 words of 1-3 letters (no letter repeated back to back)."""
    if words is None:
        words = []
        for _ in range(int(rng.integers(1, 4))):
            w = ""
            while len(w) < int(rng.integers(1, 4)) or not w:
                c = LETTERS[int(rng.integers(len(LETTERS)))]
                if not w or w[-1] != c:
                    w += c
            words.append(w)
    phones = ["h#"]
    for w in words:
        phones += [LETTER_TONES[c] for c in w] + ["h#"]
    audio, _ = _synthesize(phones, rng, pitch)
    return audio, " ".join(words).upper()


def _speakers(n_spk: int, utts: int, seed: int) -> list[tuple[str, list[tuple[np.ndarray, str]]]]:
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_spk):
        spk = str(100 + s + 10 * seed)
        pitch = 1.0 + 0.02 * (s % 3 - 1)
        out.append((spk, [make_utterance(rng, pitch, ALL_LETTERS if s == i == 0 else None) for i in range(utts)]))
    return out


def make_librispeech(root: Path, splits: dict[str, tuple[int, int]], fmt: str = "FLAC") -> Path:
    """``splits``: subset name -> (speakers, utterances per speaker). One chapter per speaker."""
    for k, (name, (n_spk, utts)) in enumerate(splits.items()):
        for spk, items in _speakers(n_spk, utts, seed=k):
            chapter = root / name / spk / "7"
            chapter.mkdir(parents=True, exist_ok=True)
            lines = []
            for i, (audio, text) in enumerate(items):
                utt = f"{spk}-7-{i:04d}"
                sf.write(chapter / f"{utt}.{fmt.lower()}", audio, SAMPLE_RATE, format=fmt)
                lines.append(f"{utt} {text}\n")
            (chapter / f"{spk}-7.trans.txt").write_text("".join(lines))
    return root


def make_kaldi_data(root: Path, splits: dict[str, tuple[int, int]], fmt: str = "WAV",
                    segments: bool = False) -> Path:
    """Audio under ``root/audio``, data dirs under ``root/data/<split>`` (returned: ``root/data``).

    With ``segments``, each speaker's utterances are joined into one recording and listed in ``segments``.
    """
    ext = fmt.lower()
    for k, (name, (n_spk, utts)) in enumerate(splits.items()):
        d = root / "data" / name
        d.mkdir(parents=True, exist_ok=True)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        wav, text, utt2spk, segs = [], [], [], []
        for spk, items in _speakers(n_spk, utts, seed=k):
            if segments:
                rec = f"{name}-{spk}-rec"
                path = root / "audio" / f"{rec}.{ext}"
                sf.write(path, np.concatenate([a for a, _ in items]), SAMPLE_RATE, format=fmt)
                wav.append(f"{rec} {path}\n")
                t = 0.0
                for i, (audio, tr) in enumerate(items):
                    utt = f"{spk}-{name}-{i:03d}"
                    dur = len(audio) / SAMPLE_RATE
                    segs.append(f"{utt} {rec} {t:.4f} {t + dur:.4f}\n")
                    text.append(f"{utt} {tr}\n")
                    utt2spk.append(f"{utt} {spk}\n")
                    t += dur
                continue
            for i, (audio, tr) in enumerate(items):
                utt = f"{spk}-{name}-{i:03d}"
                path = root / "audio" / f"{utt}.{ext}"
                sf.write(path, audio, SAMPLE_RATE, format=fmt)
                wav.append(f"{utt} {path}\n")
                text.append(f"{utt} {tr}\n")
                utt2spk.append(f"{utt} {spk}\n")
        (d / "wav.scp").write_text("".join(sorted(wav)))
        (d / "text").write_text("".join(sorted(text)))
        (d / "utt2spk").write_text("".join(sorted(utt2spk)))
        if segments:
            (d / "segments").write_text("".join(sorted(segs)))
    return root / "data"


def make_manifest(root: Path, splits: dict[str, tuple[int, int]], kind: str = "jsonl") -> Path:
    """One ``<split>.jsonl`` (or ``.csv``) per split under ``root``, audio as wav files beside them."""
    root.mkdir(parents=True, exist_ok=True)
    for k, (name, (n_spk, utts)) in enumerate(splits.items()):
        rows = []
        for spk, items in _speakers(n_spk, utts, seed=k):
            for i, (audio, tr) in enumerate(items):
                rel = f"wav/{name}-{spk}-{i}.wav"
                (root / "wav").mkdir(exist_ok=True)
                sf.write(root / rel, audio, SAMPLE_RATE)
                rows.append({"id": f"{spk}-{name}-{i}", "path": rel, "text": tr, "speaker": spk})
        if kind == "jsonl":
            (root / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            lines = ["id,path,text,speaker"] + [f"{r['id']},{r['path']},{r['text']},{r['speaker']}" for r in rows]
            (root / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return root
