"""Generate a corpus in LDC TIMIT's layout from free speech synthesisers.

``OUT/TRAIN|TEST/DR1..DR8/<F|M><3 letters><digit>/{SA1,SA2,SXn,SIn}.{WAV,PHN,WRD,TXT}``, ten sentences per
speaker like TIMIT (two SA read by everyone, five SX each shared by about seven speakers, three SI read once).
Audio comes from the festival, flite and espeak-ng voices in :mod:`data_prep.tts` (``engines``; festival and
flite by default, as the demo corpus was made); each pseudo-speaker is one base voice
with a label-preserving sox transform (pitch, tempo with the labels scaled by the same factor, a mild
formant shift, optional light noise). Whole base talkers are held out for TEST, whose speakers carry the
names of TIMIT's core-test and dev lists so standard split code finds them. ``size="timit"`` writes TIMIT's own
shape: 462 TRAIN speakers and 168 TEST speakers (the 24 core-test, the 50 dev-list and 94 more), each reading 8
utterances besides the two SA sentences (3,696 training utterances, as TIMIT's standard training set).

Phone labels are the engines' own timings in the CMU radio set mapped to TIMIT-61 symbols: ``pau`` at the
edges becomes ``h#``, stops (and affricates) are split into closure + release. That split is a heuristic:
the engines have no closure segments, so a fixed fraction of each stop's duration is called closure.

Resumable and deterministic: every speaker's parameters are fixed by the seed up front, each speaker folder
is written under a temporary name and renamed when complete, and ``SYNTH_INFO.json`` is written last.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from data_prep.espeak_ng import UnmappedPhoneme
from data_prep.phones import TIMIT_61
from data_prep.text_pool import load_pool, normalise_words
from data_prep.tts import ENGINES, VOICES, Synthesis, Voice, check_engines, synthesize, voices_for_talkers
from lstm_asr.errors import CorpusError, LstmAsrError

VERSION = 1
MARKER = "SYNTH_INFO.json"
SETTINGS = ".synth_settings.json"  # written first: a resumed run must use the same settings
RATE = 16000
DEFAULT_ENGINES = ("festival", "flite")  # the demo corpus's; espeak-ng adds 12 talkers (its voice variants)
# TIMIT's shape (--size timit): 462 training speakers; 168 test speakers = 24 core + 50 dev-list + 94 others.
TIMIT_SIZE = {"n_train": 462, "n_core": 24, "n_dev": 50, "n_extra_test": 94}

# Two fixed prompts from the pool, read by every speaker like TIMIT's SA1/SA2 (which are LDC text).
SA_TEXTS = (
    "A fugitive and a vagabond shalt thou be in the earth.",
    "The hooks of the pillars and their fillets were of silver.",
)
SX_PER_SPEAKER = 5
SI_PER_SPEAKER = 3
SX_READERS = 7  # TIMIT: each SX prompt is read by seven speakers
SX_NUMBERS = 450  # TIMIT numbers SX prompts 3..452 and SI prompts from 453
SX_FIRST, SI_FIRST = 3, 453

# TIMIT TRAIN speakers per dialect region, used as sampling weights for TRAIN speakers' regions.
_DR_WEIGHTS = (38, 76, 76, 68, 70, 35, 77, 22)

# Closure fraction of each stop (and affricate) when it is split into closure + release. A heuristic: the
# engines give one segment per stop; TIMIT labels the silent closure and the burst separately.
_SPLITS = {
    "b": ("bcl", 0.55),
    "d": ("dcl", 0.55),
    "g": ("gcl", 0.55),
    "p": ("pcl", 0.55),
    "t": ("tcl", 0.55),
    "k": ("kcl", 0.55),
    # TIMIT also labels affricates as closure + frication ("tcl ch", "dcl jh"); the frication is longer.
    "ch": ("tcl", 0.4),
    "jh": ("dcl", 0.4),
}
_TIMIT = frozenset(TIMIT_61)

# Seconds of audio a prompt takes from its length in characters, per voice: least-squares fits over 60
# pool prompts. Used only to plan how many speakers fill the requested minutes; the summary reports the real
# length.
_EST_S = {
    **{name: (-0.37, 0.0606) for name in VOICES if name.startswith("espeak_")},  # espeak-ng: variants alike
    "festival_kal": (0.455, 0.0626),
    "flite_kal16": (-0.352, 0.0703),
    "festival_ked": (0.453, 0.0624),
    "festival_slt": (0.135, 0.0593),
    "flite_slt": (-0.066, 0.0630),
    "flite_rms": (0.158, 0.0662),
    "flite_awb": (0.076, 0.0603),
}
# Relative synthesis cost per second of audio (inverse real-time factor), to balance the worker queue.
_COST = {
    "espeak": 0.5,
    "festival": 1.0,
    "flite": 1.0,
    "festival_slt": 6.0,
    "flite_rms": 3.5,
    "flite_awb": 3.5,
    "flite_slt": 3.5,
}


def _speaker_list(name: str) -> list[str]:
    text = resources.files("data_prep").joinpath("resources", name).read_text(encoding="utf-8")
    return [line.strip().upper() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class SpeakerPlan:
    """Everything that determines one speaker's ten utterances."""

    split: str  # "TRAIN" | "TEST"
    dr: int
    name: str  # e.g. "MABC0"
    voice: str  # key of data_prep.tts.VOICES
    pitch_cents: float  # net F0 shift
    tempo: float  # > 1 is faster; labels scale by 1 / tempo
    formant: float  # sox speed factor applied with the inverse tempo: shifts formants only
    snr_db: float | None  # white noise at this SNR (active speech power), None for clean
    peak: float  # peak amplitude after the transform
    utts: tuple[tuple[str, str], ...]  # (utterance id like "SX127", prompt text)

    @property
    def folder(self) -> str:
        """Path of the speaker folder relative to the corpus root."""
        return f"{self.split}/DR{self.dr}/{self.name}"


@dataclass
class SynthSummary:
    """What :func:`generate_timit_corpus` produced (counts and minutes are read back from the files)."""

    out: Path
    seed: int
    minutes_requested: float
    train_speakers: int
    train_utterances: int
    train_minutes: float
    test_speakers: int
    test_utterances: int
    test_minutes: float
    train_talkers: list[str] = field(default_factory=list)
    test_talkers: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall-clock time of this call
    resumed_speakers: int = 0  # speakers found complete on disk and not regenerated
    skipped_utterances: int = 0  # planned utterances not written: a phone the voice's labels cannot map

    def __str__(self) -> str:
        return (
            f"Synthetic TIMIT corpus in {self.out} "
            f"(seed {self.seed}, {self.minutes_requested:g} min requested): "
            f"TRAIN {self.train_speakers} speakers, {self.train_utterances} utterances, "
            f"{self.train_minutes:.1f} min from talkers {', '.join(self.train_talkers)}; "
            f"TEST {self.test_speakers} speakers, {self.test_utterances} utterances, "
            f"{self.test_minutes:.1f} min from talker(s) {', '.join(self.test_talkers)}; "
            f"{self.seconds:.1f} s, {self.resumed_speakers} speaker(s) already complete were kept"
            + (f"; {self.skipped_utterances} utterance(s) skipped (a phone with no TIMIT mapping, listed in "
               f"{MARKER})." if self.skipped_utterances else ".")
        )


# ------------------------------------------------------------------------------------------------ planning


def _speaker_seconds(voices: Sequence[Voice], texts: Sequence[str]) -> float:
    """Expected length of one speaker's ten prompts, averaged over the voices a split uses."""
    chars = float(np.mean([len(t) for t in texts]))
    return 10 * float(np.mean([_EST_S[v.name][0] + _EST_S[v.name][1] * chars for v in voices]))


def _train_name(rng: random.Random, sex: str, taken: set[str]) -> str:
    while True:
        initials = "".join(rng.choice("ABCDEFGHIJKLMNOPRSTW") for _ in range(3))
        digit = rng.choices("0123", weights=(85, 10, 4, 1))[0]
        name = f"{sex}{initials}{digit}"
        if name not in taken:
            taken.add(name)
            return name


def _assign_voices(rng: random.Random, n: int, voices: Sequence[Voice]) -> list[Voice]:
    """Spread n speakers evenly over talkers, and over each talker's voices (engines) in turn."""
    by_talker: dict[str, list[Voice]] = {}
    for v in voices:
        by_talker.setdefault(v.talker, []).append(v)
    talkers = sorted(by_talker)
    rng.shuffle(talkers)
    counters = dict.fromkeys(talkers, 0)
    out = []
    for i in range(n):
        t = talkers[i % len(talkers)]
        out.append(by_talker[t][counters[t] % len(by_talker[t])])
        counters[t] += 1
    return out


def plan_corpus(
    minutes: float,
    seed: int,
    *,
    test_talkers: Sequence[str] = ("ked",),
    n_core: int = 24,
    n_dev: int | None = None,
    n_train: int | None = None,
    noise_prob: float = 0.3,
    engines: Sequence[str] = DEFAULT_ENGINES,
    n_extra_test: int = 0,
    train_engines: Sequence[str] | None = None,
) -> list[SpeakerPlan]:
    """Fix every speaker's name, region, voice, transform and prompts for a seed (no synthesis).

    ``engines`` chooses the synthesisers whose voices are used; ``n_extra_test`` adds TEST speakers beyond the core
    and dev lists (TIMIT's full test set has 94 more), named like training speakers. ``train_engines`` (default:
    ``engines``) limits TRAIN to some engines, e.g. to hold a whole engine out of training."""
    rng = random.Random(seed)
    pool = load_pool()
    missing = [s for s in SA_TEXTS if s not in pool]
    if missing:
        raise RuntimeError(f"SA prompts missing from the text pool: {missing}")
    rest = [s for s in pool if s not in SA_TEXTS]
    rng.shuffle(rest)
    core, dev = _speaker_list("core_test_spk.list"), _speaker_list("dev_spk.list")
    if not 0 < n_core <= len(core):
        raise LstmAsrError(f"n_core must be 1..{len(core)}, got {n_core}")
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown or not engines:
        raise LstmAsrError(f"unknown engine(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(ENGINES)}")
    test_voices = [v for v in voices_for_talkers(test_talkers) if v.engine in engines]
    train_voices = [v for v in VOICES.values() if v.talker not in test_talkers and v.engine in engines
                    and v.engine in (engines if train_engines is None else train_engines)]
    if not test_voices or not train_voices:
        raise LstmAsrError("hold out at least one talker for TEST and leave at least one for TRAIN")
    test_spk_s = _speaker_seconds(test_voices, rest[:2000])
    train_spk_s = _speaker_seconds(train_voices, rest[:2000])
    if n_dev is None:
        n_dev = min(50, max(8, round(minutes * 60 / 3 / test_spk_s) - n_core))
    if not 0 <= n_dev <= len(dev):
        raise LstmAsrError(f"n_dev must be 0..{len(dev)}, got {n_dev}")
    n_test = n_core + n_dev + n_extra_test
    if n_train is None:
        train_s = minutes * 60 - n_test * test_spk_s
        n_train = max(len({v.talker for v in train_voices}), round(train_s / train_spk_s))

    # Core-test list: three speakers per dialect region in order DR1..DR8. The dev list does not record
    # regions, so dev speakers go round-robin over DR1..DR8 (nominal regions; only the names matter).
    test_ids = [(1 + i // 3, name) for i, name in enumerate(core[:n_core])]
    test_ids += [(1 + i % 8, name) for i, name in enumerate(dev[:n_dev])]
    taken = set(core) | set(dev)
    if n_extra_test:  # drawn before the training speakers' names, from the generator's own stream
        extra_rng = random.Random(f"{seed}-extra-test")
        test_ids += [(extra_rng.choices(range(1, 9), weights=_DR_WEIGHTS)[0],
                      _train_name(extra_rng, extra_rng.choice("MF"), taken)) for _ in range(n_extra_test)]
    train_voice_list = _assign_voices(rng, n_train, train_voices)
    train_ids = [
        (rng.choices(range(1, 9), weights=_DR_WEIGHTS)[0], _train_name(rng, v.sex, taken))
        for v in train_voice_list
    ]
    test_voice_list = _assign_voices(rng, n_test, test_voices)

    # Prompts: SX prompts numbered from 3, SI from 453; TEST and TRAIN draw disjoint prompts.
    readers = SX_READERS
    while (
        sum(max(SX_PER_SPEAKER, math.ceil(n * SX_PER_SPEAKER / readers)) for n in (n_test, n_train))
        > SX_NUMBERS
    ):
        readers += 1
    n_sx = {
        s: max(SX_PER_SPEAKER, math.ceil(n * SX_PER_SPEAKER / readers))
        for s, n in (("TEST", n_test), ("TRAIN", n_train))
    }
    n_si = {"TEST": n_test * SI_PER_SPEAKER, "TRAIN": n_train * SI_PER_SPEAKER}
    if sum(n_sx.values()) + sum(n_si.values()) > len(rest):
        raise LstmAsrError(f"{minutes:g} minutes needs more prompts than the text pool's {len(rest)}")
    sx_texts = rest[: sum(n_sx.values())]
    si_texts = rest[len(sx_texts) : len(sx_texts) + sum(n_si.values())]
    sx_block = {"TEST": (0, n_sx["TEST"]), "TRAIN": (n_sx["TEST"], n_sx["TEST"] + n_sx["TRAIN"])}
    si_block = {"TEST": (0, n_si["TEST"]), "TRAIN": (n_si["TEST"], n_si["TEST"] + n_si["TRAIN"])}

    plans: list[SpeakerPlan] = []
    for split, ids, voices in (("TEST", test_ids, test_voice_list), ("TRAIN", train_ids, train_voice_list)):
        sx0, sx1 = sx_block[split]
        si0, _ = si_block[split]
        for s, ((dr, name), voice) in enumerate(zip(ids, voices, strict=True)):
            utts = [("SA1", SA_TEXTS[0]), ("SA2", SA_TEXTS[1])]
            for j in range(SX_PER_SPEAKER):
                k = sx0 + (s * SX_PER_SPEAKER + j) % (sx1 - sx0)
                utts.append((f"SX{SX_FIRST + k}", sx_texts[k]))
            for j in range(SI_PER_SPEAKER):
                k = si0 + s * SI_PER_SPEAKER + j
                utts.append((f"SI{SI_FIRST + k}", si_texts[k]))
            plans.append(
                SpeakerPlan(
                    split=split,
                    dr=dr,
                    name=name,
                    voice=voice.name,
                    pitch_cents=round(rng.uniform(-150, 150), 1),
                    tempo=round(rng.uniform(0.9, 1.1), 3),
                    formant=round(rng.uniform(0.92, 1.08), 3),
                    snr_db=round(rng.uniform(20, 30), 1) if rng.random() < noise_prob else None,
                    peak=round(rng.uniform(0.35, 0.9), 3),
                    utts=tuple(utts),
                )
            )
    return plans


# ---------------------------------------------------------------------------------------------- rendering


def _transform(audio: np.ndarray, rate: int, spk: SpeakerPlan) -> np.ndarray:
    """Apply the speaker's sox transform and resample to 16 kHz; returns float32 audio."""
    # speed f scales pitch, formants and duration by f; the tempo that follows restores the duration (and
    # applies the speaker's tempo), and the pitch shift cancels the f part of the F0 change, so f moves
    # only the formants.
    pitch = spk.pitch_cents - 1200 * math.log2(spk.formant)
    cmd = [
        "sox",
        "-D",
        "-R",
        "-t",
        "f32",
        "-r",
        str(rate),
        "-c",
        "1",
        "-",
        "-t",
        "f32",
        "-r",
        str(RATE),
        "-c",
        "1",
        "-",
    ]
    cmd += [
        "speed",
        f"{spk.formant}",
        "tempo",
        "-s",
        f"{spk.tempo / spk.formant:.6f}",
        "pitch",
        f"{pitch:.1f}",
    ]
    cmd += ["rate", "-v", str(RATE)]
    proc = subprocess.run(cmd, input=audio.astype("<f4").tobytes(), capture_output=True)
    if proc.returncode != 0:
        raise LstmAsrError(f"sox failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    return np.frombuffer(proc.stdout, dtype="<f4").copy()


def _finish_audio(x: np.ndarray, spk: SpeakerPlan, seed: int, utt: str) -> np.ndarray:
    """Scale to the speaker's peak and add the speaker's noise (seeded per utterance)."""
    peak = float(np.max(np.abs(x))) or 1.0
    x = x * (spk.peak / peak)
    if spk.snr_db is not None:
        frames = x[: len(x) // 320 * 320].reshape(-1, 320)
        power = (frames.astype(np.float64) ** 2).mean(axis=1)
        active = power[power > power.max() * 1e-3]  # frames within 30 dB of the loudest: speech
        rng = np.random.default_rng([seed, zlib.crc32(f"{spk.folder}/{utt}".encode())])
        noise = rng.standard_normal(len(x)) * math.sqrt(float(active.mean()) / 10 ** (spk.snr_db / 10))
        x = x + noise.astype(np.float32)
    return np.clip(x, -1.0, 32767 / 32768).astype(np.float32)


def timit_labels(
    syn: Synthesis, factor: float, n: int
) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    """PHN and WRD entries (16 kHz samples) for a synthesis whose audio was stretched by ``factor``.

    PHN covers ``[0, n)`` without gaps (the last end is clipped or extended to ``n``); WRD boundaries are
    PHN boundaries, words leave gaps only over pauses, as in TIMIT.
    """
    bounds = [0]
    for _, end in syn.phones:
        bounds.append(max(bounds[-1], min(round(end * factor * RATE), n)))
    bounds[-1] = n  # the engine's last end can overrun the audio, or stop a few samples short of it
    for i in range(len(bounds) - 2, 0, -1):
        bounds[i] = min(bounds[i], bounds[i + 1])
    last = len(syn.phones) - 1
    phn: list[tuple[int, int, str]] = []
    for i, (p, _) in enumerate(syn.phones):
        s, e = bounds[i], bounds[i + 1]
        if e <= s:
            continue  # rounding or clipping left nothing of this phone
        if p == "pau":
            label = "h#" if i in (0, last) else "pau"
            phn.append((s, e, label))
        elif p in _SPLITS:
            closure, frac = _SPLITS[p]
            cut = s + round(frac * (e - s))
            if s < cut < e:
                phn += [(s, cut, closure), (cut, e, p)]
            else:
                phn.append((s, e, p))
        else:
            phn.append((s, e, p))
    bad = sorted({lab for _, _, lab in phn if lab not in _TIMIT})
    if bad:
        raise RuntimeError(f"phones outside TIMIT-61 from the synthesiser: {bad}")
    wrd = [(bounds[a], bounds[b + 1], w) for w, a, b in syn.words]
    if any(e <= s for s, e, _ in wrd):
        raise RuntimeError(f"a word has no audio left: {wrd}")
    return phn, wrd


def _write_utterance(folder: Path, utt: str, text: str, audio: np.ndarray, phn, wrd) -> None:
    sf.write(folder / f"{utt}.WAV", audio, RATE, format="NIST", subtype="PCM_16")
    (folder / f"{utt}.PHN").write_text("".join(f"{s} {e} {p}\n" for s, e, p in phn), encoding="ascii")
    (folder / f"{utt}.WRD").write_text("".join(f"{s} {e} {w}\n" for s, e, w in wrd), encoding="ascii")
    (folder / f"{utt}.TXT").write_text(f"0 {len(audio)} {text}\n", encoding="ascii")


@dataclass(frozen=True)
class _Job:
    out: str
    seed: int
    voice: str
    speakers: tuple[SpeakerPlan, ...]


def _synthesize_skipping(voice: Voice, texts: Sequence[str], tmp: Path) -> dict[str, Synthesis]:
    """Every text that ``voice`` can label honestly, synthesised; a text whose phones have no TIMIT mapping
    (:class:`UnmappedPhoneme`, a rare espeak-ng mnemonic) is left out, with one line on stderr naming it."""
    try:
        return dict(zip(texts, synthesize(voice, texts, tmp), strict=True))
    except UnmappedPhoneme:
        pass  # rare: find the text(s) one at a time rather than lose the whole job
    synths = {}
    for text in texts:
        try:
            synths[text] = synthesize(voice, [text], tmp)[0]
        except UnmappedPhoneme as exc:
            print(f"synth timit: skipped {text!r} for voice {voice.name}: {exc}", file=sys.stderr, flush=True)
    return synths


def _run_job(job: _Job) -> list[str]:
    """Synthesise and write every speaker of one job (one voice, one synthesiser process for festival).

    An utterance whose prompt the voice cannot label is not written: its speaker folder is complete without it
    (:func:`_skipped_utterances` counts those from the disk, so a resumed run counts them too)."""
    voice = VOICES[job.voice]
    texts = sorted({text for spk in job.speakers for _, text in spk.utts})
    with tempfile.TemporaryDirectory(prefix="lstm-asr-synth-") as tmp:
        synths = _synthesize_skipping(voice, texts, Path(tmp))
    done = []
    for spk in job.speakers:
        final = Path(job.out) / spk.folder
        partial = final.parent / f".{spk.name}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        for utt, text in spk.utts:
            if text not in synths:
                continue
            syn = synths[text]
            got = [w for w, _, _ in syn.words]
            if got != normalise_words(text):
                raise RuntimeError(f"{voice.name}: words {got} do not match the prompt {text!r}")
            audio = _finish_audio(_transform(syn.audio, syn.rate, spk), spk, job.seed, utt)
            phn, wrd = timit_labels(syn, 1.0 / spk.tempo, len(audio))
            _write_utterance(partial, utt, text, audio, phn, wrd)
        os.rename(partial, final)  # the folder appears complete or not at all
        done.append(spk.folder)
    return done


def _make_jobs(out: Path, seed: int, pending: Sequence[SpeakerPlan], per_job: int) -> list[_Job]:
    by_voice: dict[str, list[SpeakerPlan]] = {}
    for spk in pending:
        by_voice.setdefault(spk.voice, []).append(spk)
    jobs = []
    for voice, spks in by_voice.items():
        for i in range(0, len(spks), per_job):
            jobs.append(_Job(str(out), seed, voice, tuple(spks[i : i + per_job])))

    def cost(job: _Job) -> float:
        return _COST.get(job.voice, _COST[VOICES[job.voice].engine]) * len(job.speakers)

    # Longest first so the last job to finish is a cheap one and both workers stay busy.
    return sorted(jobs, key=lambda j: (-cost(j), j.voice, j.speakers[0].name))


def _progress_iter(results: Iterable[list[str]], total: int, done: int, show: bool) -> Iterable[list[str]]:
    if not show:
        yield from results
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("synth timit"), BarColumn(), MofNCompleteColumn(), TextColumn("speakers"))
    with Progress(*columns, TimeRemainingColumn()) as bar:
        task = bar.add_task("speakers", total=total, completed=done)
        for r in results:
            bar.advance(task, len(r))
            yield r


# ------------------------------------------------------------------------------------------------- driver


def _settings(minutes: float, seed: int, knobs: dict) -> dict:
    return {"version": VERSION, "seed": seed, "minutes": minutes, "knobs": knobs}


def _scan(out: Path, plans: Sequence[SpeakerPlan]) -> dict[str, dict[str, float]]:
    stats = {s: {"speakers": 0, "utterances": 0, "minutes": 0.0} for s in ("TRAIN", "TEST")}
    for spk in plans:
        st = stats[spk.split]
        st["speakers"] += 1
        for utt, _ in spk.utts:
            txt = out / spk.folder / f"{utt}.TXT"
            if not txt.is_file():  # skipped at generation (see _skipped_utterances)
                continue
            nsamples = int(txt.read_text(encoding="ascii").split()[1])
            st["utterances"] += 1
            st["minutes"] += nsamples / RATE / 60
    for st in stats.values():
        st["minutes"] = round(st["minutes"], 3)
    return stats


def _skipped_utterances(out: Path, plans: Sequence[SpeakerPlan]) -> list[str]:
    """The planned utterances a finished speaker folder lacks: prompts the voice could not label honestly."""
    return [f"{spk.folder}/{utt}" for spk in plans for utt, _ in spk.utts
            if (out / spk.folder).is_dir() and not (out / spk.folder / f"{utt}.WAV").is_file()]


def _test_set(name: str) -> str:
    """Which part of TIMIT's test set a TEST speaker stands for: core, dev or other."""
    if name in _speaker_list("core_test_spk.list"):
        return "core"
    return "dev" if name in _speaker_list("dev_spk.list") else "other"


def corpus_is_complete(out: Path) -> bool:
    """True only when a finished corpus is in ``out`` (its ``SYNTH_INFO.json`` marker is written last)."""
    marker = Path(out) / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("complete") is True
    except (OSError, ValueError):
        return False


def generate_timit_corpus(
    out: Path,
    minutes: float = 60.0,
    seed: int = 0,
    jobs: int = 2,
    progress: bool = True,
    *,
    test_talkers: Sequence[str] = ("ked",),
    n_core: int = 24,
    n_dev: int | None = None,
    n_train: int | None = None,
    noise_prob: float = 0.3,
    speakers_per_job: int = 4,
    engines: Sequence[str] = DEFAULT_ENGINES,
    n_extra_test: int = 0,
    train_engines: Sequence[str] | None = None,
) -> SynthSummary:
    """Generate (or finish) a synthetic TIMIT-layout corpus of about ``minutes`` minutes in ``out``.

    TEST holds the ``test_talkers`` only, as all ``n_core`` core-test speakers plus the first ``n_dev``
    dev-list speakers (default: enough to fill about a third of the minutes, 8..50); TRAIN holds every other
    talker and the remaining minutes (``n_train`` speakers overrides that). The same seed and settings give
    the same files byte for byte. An interrupted run is finished by calling again with the same settings:
    complete speaker folders are kept. Raises :class:`LstmAsrError` for bad settings, a missing synthesiser,
    or a folder that holds a corpus made with other settings.
    """
    t0 = time.monotonic()
    out = Path(out)
    if not minutes > 0:
        raise LstmAsrError(f"minutes must be positive, got {minutes}")
    if jobs < 1 or speakers_per_job < 1:
        raise LstmAsrError("jobs and speakers_per_job must be at least 1")
    if not 0 <= noise_prob <= 1:
        raise LstmAsrError(f"noise_prob must be in [0, 1], got {noise_prob}")
    knobs = {
        "test_talkers": sorted(test_talkers),
        "n_core": n_core,
        "n_dev": n_dev,
        "n_train": n_train,
        "noise_prob": noise_prob,
    }
    if tuple(engines) != DEFAULT_ENGINES or n_extra_test:  # only when set: earlier corpora's settings stay valid
        knobs.update(engines=sorted(engines), n_extra_test=n_extra_test)
    if train_engines is not None:
        knobs.update(train_engines=sorted(train_engines))
    settings = _settings(float(minutes), seed, knobs)
    plans = plan_corpus(
        minutes,
        seed,
        test_talkers=test_talkers,
        n_core=n_core,
        n_dev=n_dev,
        n_train=n_train,
        noise_prob=noise_prob,
        engines=engines,
        n_extra_test=n_extra_test,
        train_engines=train_engines,
    )
    used = sorted({spk.voice for spk in plans})
    check_engines([VOICES[v] for v in used])

    settings_file = out / SETTINGS
    if settings_file.is_file():
        previous = json.loads(settings_file.read_text(encoding="utf-8"))
        if previous != settings:
            diff = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise CorpusError(
                out,
                f"holds a corpus generated with other settings ({', '.join(diff)} differ); rerun with the "
                "same settings to finish it, or use another folder",
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        if (out / "TRAIN").exists() or (out / "TEST").exists():
            raise LstmAsrError(
                f"{out}: holds TRAIN/TEST folders not made by this generator; use an empty folder"
            )
        settings_file.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    pending = [spk for spk in plans if not (out / spk.folder).is_dir()]
    resumed = len(plans) - len(pending)
    if pending:
        work = _make_jobs(out, seed, pending, speakers_per_job)
        if jobs == 1 or len(work) == 1:
            results: Iterable[list[str]] = map(_run_job, work)
            for _ in _progress_iter(results, len(plans), resumed, progress):
                pass
        else:
            # fork, not spawn: spawn re-imports the caller's main module, which breaks scripts without a
            # __main__ guard; the workers only run numpy and subprocesses, so a forked torch is harmless.
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(min(jobs, len(work))) as pool:
                for _ in _progress_iter(pool.imap_unordered(_run_job, work), len(plans), resumed, progress):
                    pass

    stats = _scan(out, plans)
    skipped = _skipped_utterances(out, plans)
    train_talkers = sorted({VOICES[s.voice].talker for s in plans if s.split == "TRAIN"})
    test_talkers_used = sorted({VOICES[s.voice].talker for s in plans if s.split == "TEST"})
    if not corpus_is_complete(out):
        info = {
            **settings,
            "complete": True,
            "generator": "lstm-asr synth timit (data_prep.synth_timit)",
            "sample_rate": RATE,
            "splits": stats,
            "talkers": {
                t: {"sex": VOICES[vs[0]].sex, "voices": vs}
                for t in sorted({v.talker for v in VOICES.values()})
                if (vs := [v.name for v in VOICES.values() if v.talker == t and v.name in used])
            },
            "train_talkers": train_talkers,
            "test_talkers": test_talkers_used,
            "skipped_utterances": skipped,
            "voices": {v: {"engine": VOICES[v].engine, "voice": VOICES[v].voice_id} for v in used},
            "labels": (
                "engine phone timings (CMU radio set) mapped to TIMIT-61: edge pau -> h#, inner pau kept; "
                "stops split into closure + release at 55/45 of their duration and ch/jh into tcl/dcl + "
                "frication at 40/60 (a heuristic); words are whitespace tokens, lower case, no punctuation; "
                "espeak-ng: phone starts from the library's phoneme events (sample positions), its mnemonics mapped "
                "to the same set plus dx (flap) and q (glottal stop), r-coloured vowels split 60/40 into vowel + "
                "r, syllabic l/n 40/60 into ax + l/n (data_prep/espeak_ng.py)"
            ),
            "notes": (
                "TEST speakers carry TIMIT core-test/dev names (their sex letter is kept from the list, the "
                "real talker is recorded here); core-test speakers sit in their TIMIT dialect regions, "
                "dev-list speakers in nominal ones"
            ),
            "speakers": {
                spk.folder: {
                    "talker": VOICES[spk.voice].talker,
                    "engine": VOICES[spk.voice].engine,
                    "voice": spk.voice,
                    "set": _test_set(spk.name) if spk.split == "TEST" else "train",
                    "transform": {
                        "pitch_cents": spk.pitch_cents,
                        "tempo": spk.tempo,
                        "formant": spk.formant,
                        "snr_db": spk.snr_db,
                        "peak": spk.peak,
                    },
                }
                for spk in plans
            },
        }
        tmp = out / f".{MARKER}.tmp"
        tmp.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, out / MARKER)  # last: only now does the folder count as a finished corpus
    return SynthSummary(
        out=out,
        seed=seed,
        minutes_requested=float(minutes),
        train_speakers=int(stats["TRAIN"]["speakers"]),
        train_utterances=int(stats["TRAIN"]["utterances"]),
        train_minutes=stats["TRAIN"]["minutes"],
        test_speakers=int(stats["TEST"]["speakers"]),
        test_utterances=int(stats["TEST"]["utterances"]),
        test_minutes=stats["TEST"]["minutes"],
        train_talkers=train_talkers,
        test_talkers=test_talkers_used,
        seconds=time.monotonic() - t0,
        resumed_speakers=resumed,
        skipped_utterances=len(skipped),
    )


def generate_for_cli(out: Path, minutes: float, seed: int, jobs: int, size: str = "", engines: str = "",
                     test_talkers: str = "", train_engines: str = "") -> SynthSummary:
    """``lstm-asr synth timit``: comma-separated option strings to :func:`generate_timit_corpus` arguments."""
    if size not in ("", "timit"):
        raise LstmAsrError(f"unknown --size {size!r} (use timit, or leave it out and give --minutes)")
    chosen = tuple(e.strip() for e in engines.split(",") if e.strip()) or (
        ENGINES if size == "timit" else DEFAULT_ENGINES)
    held = tuple(t.strip() for t in test_talkers.split(",") if t.strip()) or (
        ("ked", "espm7", "espf5") if "espeak" in chosen else ("ked",))
    shape = dict(TIMIT_SIZE) if size == "timit" else {}
    train = tuple(e.strip() for e in train_engines.split(",") if e.strip()) or None
    return generate_timit_corpus(out, minutes=minutes, seed=seed, jobs=jobs, progress=True, test_talkers=held,
                                 engines=chosen, train_engines=train, **shape)
