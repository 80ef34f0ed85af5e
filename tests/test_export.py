"""Bring-your-own-corpus end to end: LibriSpeech (flac) and Kaldi (wav, segments) folders train with character
units and decode words; the exported TorchScript model decodes exactly as the experiment does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import run_cli, same_threads, write_recipe
from fake_text_corpus import make_kaldi_data, make_librispeech

from data_prep.audio import load_audio
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.export.torchscript import ScriptableFbank
from lstm_asr.recipe import load_recipe
from lstm_asr.recognition.recognizer import Recognizer, ScriptedRecognizer, is_torchscript
from lstm_asr.scoring.levenshtein import align
from lstm_asr.training.train import train

# dev = test = train: the tiny model is overfitted, so word outputs can be checked against the references (and
# one split means one prep).
SPLITS = {"train": (2, 4)}


def _train(tmp: Path, kind: str, path: Path, **corpus) -> Path:
    recipe = write_recipe(tmp / "r.yaml", path, tmp / "feats", training={"max_epochs": 25, "threads": 1},
                          corpus={"type": kind, "train_split": "train", "dev_split": "train", "test_split": "train",
                                  "units": "chars", **corpus})
    train(load_recipe(recipe), tmp / "exp", show_progress=False)
    return tmp / "exp"


@pytest.fixture(scope="module")
def libri_exp(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ls_exp")
    return _train(tmp, "librispeech", make_librispeech(tmp / "LibriSpeech", SPLITS, fmt="FLAC"))


def _words_of(ref_file: Path) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in ref_file.read_text().splitlines()}


def word_error_rate(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> float:
    """Percent, rounded as results.json rounds: edit errors summed over utterances / reference words."""
    errors = sum(align(r, hyps[u])[1].errors for u, r in refs.items())
    return round(100 * errors / sum(map(len, refs.values())), 2)


def test_librispeech_flac_trains_chars_and_decodes_words(libri_exp):
    results = json.loads((libri_exp / "results.json").read_text())
    refs, hyps = _words_of(libri_exp / "decode_dev" / "ref.txt"), _words_of(libri_exp / "decode_dev" / "hyp.txt")
    assert all("|" not in w for ws in refs.values() for w in ws) and sum(map(len, refs.values())) > len(refs)
    assert all("|" not in w for ws in hyps.values() for w in ws)
    # The main rate is the word error rate of those words (not of the characters), whatever the model's quality.
    assert results["metric"] == "WER" and results["dev"]["per"] == word_error_rate(refs, hyps)
    sclite = (libri_exp / "decode_dev" / "sclite.txt").read_text()
    assert "WER" in sclite and "CER" in sclite and "| 100 " in sclite


def test_kaldi_dir_wav_with_segments_trains_chars(tmp_path):
    data = make_kaldi_data(tmp_path / "kaldi", SPLITS, fmt="WAV", segments=True)
    exp = _train(tmp_path, "kaldi_dir", data)
    results = json.loads((exp / "results.json").read_text())
    refs, hyps = _words_of(exp / "decode_dev" / "ref.txt"), _words_of(exp / "decode_dev" / "hyp.txt")
    assert results["dev"]["utterances"] == 8 and results["dev"]["per"] == word_error_rate(refs, hyps)
    assert set(results["test"]["per_speaker"]) == {"100", "101"}


def test_scriptable_fbank_equals_torchaudio():
    wave = torch.randn(16000 * 3 // 2) * 0.1
    for cfg in (FeatureConfig(), FeatureConfig(num_mel_bins=23, use_energy=False, deltas=1, frame_length_ms=20.0)):
        scripted = torch.jit.script(ScriptableFbank(cfg))
        assert torch.equal(scripted(wave), compute_features(wave, cfg))


def test_exported_model_decodes_identically_without_the_experiment(libri_exp, tmp_path):
    copy = shutil.copytree(libri_exp, tmp_path / "exp_copy")
    model = tmp_path / "model.pt"
    done = run_cli("export", str(copy), "-o", str(model))
    assert done.returncode == 0, done.stderr
    shutil.rmtree(copy)  # the exported file must stand alone
    assert is_torchscript(model) and not is_torchscript(libri_exp / "best.pt")
    wav = tmp_path / "utt.wav"
    flac = sorted((libri_exp.parent / "LibriSpeech" / "train").rglob("*.flac"))[-1]
    import soundfile as sf

    sf.write(wav, load_audio(flac).numpy(), 16000)
    exp_rec, exported = Recognizer.load(libri_exp), Recognizer.load(model)
    assert isinstance(exported, ScriptedRecognizer) and exported.tokens == exp_rec.tokens
    assert torch.equal(exported.log_probs(load_audio(wav)), exp_rec.log_probs(load_audio(wav)))
    for beam in (1, 4):
        assert exported.transcribe(wav, beam=beam).to_dict() == exp_rec.transcribe(wav, beam=beam).to_dict()
    a = run_cli("decode", "--model", str(model), "--json", *same_threads(), str(wav))
    assert a.returncode == 0 and "error" not in a.stderr
    expected = exp_rec.transcribe(wav).to_dict()
    got = json.loads(a.stdout)
    assert got["text"] == expected["text"] and got["tokens"] == expected["tokens"]
    assert "|" not in got["text"] and got["text"].split() == expected["text"].split()
    loaded = torch.jit.load(str(model))
    assert list(loaded.tokens) == exp_rec.tokens and loaded.units == "chars"


def test_export_onnx_network(libri_exp, tmp_path):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "model.onnx"
    done = run_cli("export", str(libri_exp), "-o", str(out), "--format", "onnx")
    assert done.returncode == 0, done.stderr
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["tokens"]) == Recognizer.load(libri_exp).tokens
    assert json.loads(meta["features"])["num_mel_bins"] == 40


def test_export_bad_format_and_not_a_model(libri_exp, tmp_path):
    done = run_cli("export", str(libri_exp), "-o", str(tmp_path / "m.x"), "--format", "tflite")
    assert done.returncode == 1
    assert done.stderr.strip() == "error: unknown --format 'tflite' (use torchscript, onnx or sherpa-onnx)"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    done = run_cli("decode", "--model", str(junk), str(tmp_path / "m.x"))
    assert done.returncode == 1 and str(junk) in done.stderr and "Traceback" not in done.stderr


def test_evaluate_prints_wer_and_sclite_summary(libri_exp):
    done = run_cli("evaluate", str(libri_exp), "--split", "test")
    assert done.returncode == 0, done.stderr
    assert "test (best.pt): WER" in done.stdout and "| SPKR" in done.stdout and "CER" in done.stdout
