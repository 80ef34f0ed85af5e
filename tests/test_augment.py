"""Waveform augmentation: determinism, label times after speed perturbation, CTC-feasibility skips, exact resume
with augmentation on, and one-line errors for bad noise/RIR folders and nonsensical recipe ranges."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import write_recipe

import lstm_asr.data.wave_batches as wave_batches
from lstm_asr.data.augment import (
    AugmentConfig,
    Augmenter,
    coloured_noise,
    reverberate,
    scaled_time,
    speed_perturb,
)
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.features import FeatureConfig
from lstm_asr.data.prep import feature_config, store_dir
from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.recipe import load_recipe
from lstm_asr.training.train import train

RATE = 16000
ALL_ON = {"speed": [0.9, 1.0, 1.1], "noise_prob": 0.5, "reverb_prob": 0.5, "rir_count": 3, "telephone_prob": 0.3,
          "gain_prob": 0.5}


def _recipe(tmp: Path, corpus: Path, store: Path, name: str = "r", augment: dict | None = None, **training):
    return load_recipe(write_recipe(tmp / f"{name}.yaml", corpus, store, model={"hidden": 16, "layers": 2},
                                    training={"max_epochs": 2, "threads": 1, **training},
                                    augment=augment if augment is not None else ALL_ON))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("augment_feats")


def _source(recipe, output_lengths=lambda n: n):
    from lstm_asr.data.prep import load_splits

    split = load_splits(recipe, show_progress=False)[recipe.corpus.train_split]
    source = wave_batches.training_batches(recipe, split, feature_config(recipe), output_lengths, store_dir(recipe))
    return source, split


def test_augmented_batches_are_a_function_of_seed_epoch_and_utterance(tiny_corpus: Path, store: Path,
                                                                      tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_corpus, store)
    a, split = _source(recipe)
    b, _ = _source(recipe)  # a second source, as after a resume
    assert isinstance(a, wave_batches.AugmentedBatches)
    idx = np.arange(len(split))
    fa, la, ta, tla = a.batch(idx, epoch=3)
    fb, lb, tb, tlb = b.batch(idx[::-1], epoch=3)  # another batch order: each utterance gets the same audio
    for row in range(len(idx)):
        j = len(idx) - 1 - row
        assert la[row] == lb[j] and torch.equal(fa[row, : la[row]], fb[j, : lb[j]])
    assert torch.equal(tla, tlb.flip(0))
    other, lo, _, _ = a.batch(idx, epoch=4)  # another epoch: other draws
    assert not all(lo[r] == la[r] and torch.equal(other[r, : lo[r]], fa[r, : la[r]]) for r in range(len(idx)))
    # The stored path is the same features as prep's: augmentation off means StoredBatches.
    plain, _ = _source(_recipe(tmp_path, tiny_corpus, store, "off", augment={}))
    assert isinstance(plain, wave_batches.StoredBatches)
    assert torch.equal(plain.batch(idx, 1)[0], split.batch(idx)[0])


def test_speed_perturbation_scales_label_times_and_frames() -> None:
    # Tone bursts at known segments: after perturbation by f, each burst's energy sits at the segment's times / f.
    segments = [(0.10, 0.25), (0.40, 0.48), (0.70, 0.95)]
    n = RATE
    t = np.arange(n) / RATE
    wave = np.zeros(n, dtype=np.float32)
    for s, e in segments:
        on = (t >= s) & (t < e)
        wave[on] = 0.5 * np.sin(2 * math.pi * 440 * t[on])
    for factor in (0.9, 1.1):
        out = speed_perturb(torch.from_numpy(wave), RATE, factor).numpy()
        assert abs(len(out) - n / factor) <= 1
        energy = out**2
        for s, e in segments:
            a, b = (int(scaled_time(x, factor) * RATE) for x in (s, e))
            margin = int(0.005 * RATE)  # the resampling filter's reach
            inside = energy[a + margin : b - margin].mean()
            assert inside > 0.05  # a 0.5-amplitude sine has mean power 0.125
            gap_before = energy[max(0, a - 3 * margin) : a - margin].mean() if a > 3 * margin else 0.0
            assert gap_before < 1e-3 * inside
        # The frame count CTC sees is that of the scaled length (what the feasibility check uses).
        cfg = FeatureConfig()
        assert cfg.num_frames(len(out)) == cfg.num_frames(round(n / factor))
    assert scaled_time(np.array([1600, 3200]), 1.1).tolist() == pytest.approx([1454.545, 2909.091], abs=1e-3)


def test_noise_reverb_and_gain_keep_length_and_hit_the_snr() -> None:
    rng = np.random.default_rng(0)
    speech = torch.from_numpy(np.sin(np.arange(8000) * 0.05).astype(np.float32) * 0.3)
    for beta in (0.0, 1.0, 2.0):
        noise = coloured_noise(8000, beta, rng)
        assert noise.numel() == 8000 and float(noise.pow(2).mean()) == pytest.approx(1.0, rel=1e-4)
    # A brown noise has more power in low frequencies than a white one.
    spec_w = torch.fft.rfft(coloured_noise(8192, 0.0, rng)).abs().pow(2)
    spec_b = torch.fft.rfft(coloured_noise(8192, 2.0, rng)).abs().pow(2)
    assert spec_b[:100].sum() / spec_b.sum() > 10 * spec_w[:100].sum() / spec_w.sum()
    rir = torch.zeros(400)
    rir[50], rir[300] = 1.0, 0.3
    wet = reverberate(speech, rir)
    assert wet.numel() == speech.numel()
    # Aligned on the direct path: the output is the input plus a 250-sample echo, rescaled to the input's level.
    expect = speech.clone()
    expect[250:] += 0.3 * speech[:-250]
    expect *= speech.pow(2).mean().sqrt() / expect.pow(2).mean().sqrt()
    torch.testing.assert_close(wet, expect, atol=1e-4, rtol=0)
    cfg = AugmentConfig(noise_prob=1.0, noise_snr=(10.0, 10.0))
    aug = Augmenter(cfg)
    noisy = aug(speech, np.random.default_rng(1), 1.0)
    snr = 10 * math.log10(float(speech.pow(2).sum()) / float((noisy - speech).pow(2).sum()))
    assert snr == pytest.approx(10.0, abs=0.01)


def test_speed_that_would_make_ctc_infeasible_is_skipped_and_counted(tiny_corpus: Path, store: Path,
                                                                    tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_corpus, store, "fast", augment={"speed": [1.1]})
    probe, split = _source(recipe)
    i = 0
    # An output rate that keeps just the utterance's own frames: any speed-up leaves it infeasible.
    need = int(split.num_frames[i])
    source, _ = _source(recipe, lambda n: torch.where(n >= need, n, torch.zeros_like(n)))
    feats, lengths, _, _ = source.batch(np.array([i]), epoch=1)
    assert sum(source.skipped.values()) == 1
    assert torch.equal(feats[0, : lengths[0]], torch.from_numpy(np.array(split.feats(i))))  # its own speed
    probe.batch(np.array([i]), epoch=1)
    assert not probe.skipped  # where it stays feasible, it is perturbed and nothing is counted


def test_audio_that_went_bad_after_prep_uses_the_stored_features(tiny_corpus: Path, store: Path,
                                                                  tmp_path: Path) -> None:
    source, split = _source(_recipe(tmp_path, tiny_corpus, store))

    def unreadable(i: int) -> torch.Tensor:
        raise LstmAsrError("x.wav: cannot decode audio")

    source.read = unreadable
    feats, lengths, _, _ = source.batch(np.array([1]), epoch=1)
    assert torch.equal(feats[0, : lengths[0]], torch.from_numpy(np.array(split.feats(1))))
    assert sum(source.skipped.values()) == 1


def test_resume_with_augmentation_is_exact(tiny_corpus: Path, store: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = _recipe(tmp_path, tiny_corpus, store, "resume", max_epochs=3, checkpoint_every=1, max_batch=2)
    train(recipe, tmp_path / "ref", show_progress=False)
    real = wave_batches.AugmentedBatches.batch
    calls = [0]

    def dying(self, indices, epoch):
        calls[0] += 1
        if calls[0] == 7:  # in the middle of the second epoch (4 batches per epoch)
            raise KeyboardInterrupt
        return real(self, indices, epoch)

    monkeypatch.setattr(wave_batches.AugmentedBatches, "batch", dying)
    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path / "cut", show_progress=False)
    monkeypatch.setattr(wave_batches.AugmentedBatches, "batch", real)
    train(recipe, tmp_path / "cut", show_progress=False, resume=True)
    a, b = (load_checkpoint(tmp_path / x / "last.pt")["state_dict"] for x in ("ref", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, RATE)
    return path


def test_bad_noise_and_rir_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(LstmAsrError, match=r"augment.noise_dir: .*missing: folder not found"):
        Augmenter(AugmentConfig(noise_prob=0.5, noise_dir=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(LstmAsrError, match=r"augment.rir_dir: .*empty: holds no audio files"):
        Augmenter(AugmentConfig(reverb_prob=0.5, rir_dir=str(tmp_path / "empty")))
    bad = tmp_path / "bad"
    _write_wav(bad / "ok.wav", np.full(100, 0.1, dtype=np.float32))
    (bad / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(LstmAsrError, match=r"augment.noise_dir: .*broken.wav"):
        Augmenter(AugmentConfig(noise_prob=0.5, noise_dir=str(bad)))
    silent = tmp_path / "silent"
    _write_wav(silent / "zero.wav", np.zeros(100, dtype=np.float32))
    with pytest.raises(LstmAsrError, match=r"zero.wav: silent or empty audio"):
        Augmenter(AugmentConfig(reverb_prob=0.5, rir_dir=str(silent)))
    for e in (LstmAsrError,):
        try:
            Augmenter(AugmentConfig(noise_prob=0.5, noise_dir=str(tmp_path / "missing")))
        except e as exc:
            assert "\n" not in str(exc)


def test_noise_and_rir_folders_are_used(tmp_path: Path) -> None:
    _write_wav(tmp_path / "noise" / "hum.wav", 0.2 * np.sin(np.arange(3000) * 0.3).astype(np.float32))
    rir = np.zeros(200, dtype=np.float32)
    rir[10], rir[150] = 1.0, 0.5
    _write_wav(tmp_path / "rirs" / "room.wav", rir)
    aug = Augmenter(AugmentConfig(noise_prob=1.0, noise_dir=str(tmp_path / "noise"), reverb_prob=1.0,
                                  rir_dir=str(tmp_path / "rirs")))
    assert len(aug.noises) == 1 and len(aug.rirs) == 1
    speech = torch.from_numpy(np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 0.1)
    out = aug(speech, np.random.default_rng(2), 1.0)
    assert out.shape == speech.shape and not torch.equal(out, speech)


@pytest.mark.parametrize("override, key", [
    ("augment.noise_snr=[30, 5]", "augment.noise_snr"),
    ("augment.noise_snr=10", "augment.noise_snr"),
    ("augment.speed=[0, 1.0]", "augment.speed"),
    ("augment.speed=[]", "augment.speed"),
    ("augment.reverb_prob=1.5", "augment.reverb_prob"),
    ("augment.gain_db=[-100, 0]", "augment.gain_db"),
    ("augment.rir_count=0", "augment.rir_count"),
    ("augment.speed=fast", "augment.speed[0]"),
])
def test_nonsensical_augment_settings_are_recipe_errors(tmp_path: Path, override: str, key: str) -> None:
    path = write_recipe(tmp_path / "r.yaml", tmp_path, tmp_path / "feats")
    with pytest.raises(RecipeError) as err:
        load_recipe(path, [override])
    assert err.value.key == key and "\n" not in str(err.value)


def test_split_reader_names_a_corpus_that_lost_utterances(tiny_corpus: Path, store: Path, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_corpus, store)
    _source(recipe)  # prepares the store
    split = FeatureSplit(store_dir(recipe) / "train")
    split.ids = [*split.ids[:-1], "no-such-utterance"]
    with pytest.raises(LstmAsrError, match="no longer in the corpus"):
        wave_batches.split_reader(recipe, split, "train", RATE)
