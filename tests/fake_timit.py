"""A tiny synthetic TIMIT tree for tests: real layout and file formats, learnable audio.

Each utterance is ``h#`` + 2..8 phones from :data:`FAKE_PHONES` + ``h#``; every phone is a 60-150 ms segment
whose audio is a fixed pair of sinusoids (shifted a few percent per speaker) plus a little noise, and
``h#`` is faint noise. A small BLSTM-CTC separates these classes within seconds of training.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.sphere import write_sphere
from data_prep.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS

SAMPLE_RATE = 16000
# Phone -> (f1, f2) in Hz. Chosen far apart on the mel scale and all in distinct 39-class groups, so the
# folded scores of a trained model are meaningful too.
FAKE_PHONE_FREQS: dict[str, tuple[float, float]] = {
    "aa": (730.0, 1090.0),
    "iy": (270.0, 2290.0),
    "uw": (300.0, 870.0),
    "s": (4800.0, 6200.0),
    "m": (180.0, 1500.0),
    "r": (490.0, 1350.0),
    "f": (3200.0, 7200.0),
}
FAKE_PHONES: tuple[str, ...] = ("h#", *FAKE_PHONE_FREQS)
"""The 8 phones (a subset of TRAIN_PHONES) that fake utterances use."""
_INNER = tuple(FAKE_PHONE_FREQS)


def fake_train_speakers(n: int) -> list[str]:
    """``n`` speaker ids that look like TIMIT's but are in neither the dev nor the core-test list."""
    taken = set(DEV_SPEAKERS) | set(CORE_TEST_SPEAKERS)
    out: list[str] = []
    i = 0
    while len(out) < n:
        name = f"{'fm'[i % 2]}zz{chr(ord('a') + (i // 10) % 26)}{i % 10}"
        if name not in taken:
            out.append(name)
        i += 1
    return out


def _phone_sequence(rng: np.random.Generator) -> list[str]:
    n_inner = int(rng.integers(2, 9))  # 4..10 phones in all with the two h#
    seq: list[str] = []
    while len(seq) < n_inner:
        p = _INNER[int(rng.integers(len(_INNER)))]
        if not seq or seq[-1] != p:  # a repeated tone would have no audible boundary
            seq.append(p)
    return ["h#", *seq, "h#"]


def _synthesize(phones: list[str], rng: np.random.Generator, pitch: float) -> tuple[np.ndarray, list[int]]:
    """Audio for ``phones`` and the sample boundaries (len(phones) + 1 of them)."""
    lengths = rng.integers(int(0.060 * SAMPLE_RATE), int(0.150 * SAMPLE_RATE) + 1, size=len(phones))
    bounds = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    audio = rng.normal(0.0, 0.003, size=int(bounds[-1])).astype(np.float32)
    for p, b, e in zip(phones, bounds[:-1], bounds[1:], strict=True):
        if p == "h#":
            continue
        t = np.arange(e - b, dtype=np.float32) / SAMPLE_RATE
        f1, f2 = FAKE_PHONE_FREQS[p]
        ph1, ph2 = rng.uniform(0, 2 * np.pi, size=2)
        seg = 0.3 * np.sin(2 * np.pi * f1 * pitch * t + ph1) + 0.2 * np.sin(2 * np.pi * f2 * pitch * t + ph2)
        audio[b:e] += seg.astype(np.float32) + rng.normal(0.0, 0.01, size=e - b).astype(np.float32)
    return audio, bounds.tolist()


def _words(phones: list[str], bounds: list[int], rng: np.random.Generator) -> list[tuple[int, int, str]]:
    """Group the inner phones into words of 1-3 phones; the word is the phone names glued together."""
    words: list[tuple[int, int, str]] = []
    i, last = 1, len(phones) - 1
    while i < last:
        k = min(int(rng.integers(1, 4)), last - i)
        words.append((bounds[i], bounds[i + k], "".join(phones[i : i + k])))
        i += k
    return words


def _write_utterance(
    folder: Path, sentence: str, upper: bool, riff: bool, rng: np.random.Generator, pitch: float
) -> None:
    phones = _phone_sequence(rng)
    audio, bounds = _synthesize(phones, rng, pitch)
    name = sentence.upper() if upper else sentence

    def ext(e: str) -> Path:
        return folder / f"{name}.{e.upper() if upper else e}"

    if riff:
        sf.write(ext("wav"), audio, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    else:
        write_sphere(ext("wav"), audio, SAMPLE_RATE)
    ext("phn").write_text("".join(f"{b} {e} {p}\n" for p, b, e in zip(phones, bounds[:-1], bounds[1:], strict=True)))
    words = _words(phones, bounds, rng)
    ext("wrd").write_text("".join(f"{b} {e} {w}\n" for b, e, w in words))
    text = " ".join(w for _, _, w in words).capitalize() + "."
    ext("txt").write_text(f"0 {bounds[-1]} {text}\n")


def make_fake_timit(
    root: Path,
    n_train: int = 6,
    n_dev: int = 2,
    n_core: int = 2,
    utts_per_speaker: int = 4,
    upper: bool = True,
    riff: bool = False,
    seed: int = 0,
    include_sa: bool = True,
) -> Path:
    """Write a fake TIMIT tree under ``root`` and return ``root``.

    TRAIN holds ``n_train`` invented speakers; TEST holds the first ``n_dev`` speakers of dev_spk.list and the
    first ``n_core`` of core_test_spk.list. Each speaker gets ``utts_per_speaker`` SI/SX sentences (so the
    train/dev/test splits have ``n * utts_per_speaker`` utterances) plus SA1/SA2 when ``include_sa``.
    Names are upper case (``TRAIN/DR1/FZZA0/SI1000.WAV``) or lower case; audio is SPHERE or, with ``riff``,
    RIFF WAV still named ``.wav``. Deterministic for a given ``seed``.
    """
    if n_dev > len(DEV_SPEAKERS) or n_core > len(CORE_TEST_SPEAKERS):
        raise ValueError(f"at most {len(DEV_SPEAKERS)} dev and {len(CORE_TEST_SPEAKERS)} core speakers exist")
    root = Path(root)
    rng = np.random.default_rng(seed)
    plan = [("train", s) for s in fake_train_speakers(n_train)]
    plan += [("test", s) for s in DEV_SPEAKERS[:n_dev]] + [("test", s) for s in CORE_TEST_SPEAKERS[:n_core]]
    for k, (usage, speaker) in enumerate(plan):
        dialect = f"dr{k % 8 + 1}"
        parts = (usage, dialect, speaker)
        folder = root.joinpath(*(p.upper() if upper else p for p in parts))
        folder.mkdir(parents=True, exist_ok=True)
        # Speaker-dependent pitch, stable across runs (crc32, unlike hash(), is not salted).
        pitch = 1.0 + 0.02 * (zlib.crc32(speaker.encode()) % 5 - 2)
        sentences = ["sa1", "sa2"] if include_sa else []
        sentences += [f"si{1000 + 10 * k + j}" if j % 2 == 0 else f"sx{10 * k + j}" for j in range(utts_per_speaker)]
        for sentence in sentences:
            # SA sentences are the same words for everyone, as in TIMIT: seed them by sentence only.
            utt_rng = np.random.default_rng([seed, zlib.crc32(sentence.encode())]) if sentence.startswith("sa") else rng
            _write_utterance(folder, sentence, upper, riff, utt_rng, pitch)
    return root
