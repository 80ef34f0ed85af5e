"""End to end on generated TIMIT trees: prep, train, results, decode and evaluate through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from conftest import run_cli, write_recipe
from fake_timit import make_fake_timit

from data_prep.sphere import read_sphere
from lstm_asr.data.feature_store import FeatureSplit


def test_tiny_model_overfits_to_near_zero_per(trained_exp: Path) -> None:
    results = json.loads((trained_exp / "results.json").read_text())
    assert results["dev"]["per"] <= 2.0, results["dev"]
    assert results["dev"]["utterances"] == 8
    # The experiment folder holds what the recipe promises.
    for name in ("recipe.yaml", "metrics.jsonl", "best.pt", "last.pt", "decode_test/alignments.txt"):
        assert (trained_exp / name).exists(), name
    epochs = [json.loads(x) for x in (trained_exp / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in epochs if e["kind"] == "epoch"]
    assert len(epochs) == 30 and epochs[-1]["train_loss"] < epochs[0]["train_loss"] / 10


def test_decode_cli_on_wav_at_other_rate_and_channels(trained_exp: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    # Take a training utterance, resample it to 44.1 kHz stereo RIFF: decode must resample and downmix.
    wav_path = sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0]
    audio, sr = read_sphere(wav_path)
    n_out = int(len(audio) * 44100 / sr)
    resampled = np.interp(np.linspace(0, len(audio) - 1, n_out), np.arange(len(audio)), audio)
    stereo = np.stack([resampled, resampled], axis=1).astype(np.float32)
    other = tmp_path / "utt44k.wav"
    sf.write(other, stereo, 44100)
    ref = [line.split()[2] for line in wav_path.with_suffix(".PHN").read_text().splitlines()]

    res = run_cli("decode", "--model", str(trained_exp), "--json", str(other))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    from data_prep.phones import fold_39

    assert fold_39(out["text"].split()) == fold_39(ref)
    starts = [t["start"] for t in out["tokens"]]
    assert starts == sorted(starts) and 0 <= starts[0] and out["tokens"][-1]["end"] <= out["duration"] + 0.02

    beam = run_cli("decode", "--model", str(trained_exp), "--beam", "8", str(other))
    assert beam.returncode == 0, beam.stderr
    assert fold_39(beam.stdout.split("\t")[1].split()) == fold_39(ref)


def test_evaluate_cli_writes_alignments(trained_exp: Path) -> None:
    res = run_cli("evaluate", str(trained_exp), "--split", "test")
    assert res.returncode == 0, res.stderr
    assert "PER" in res.stdout and "S=" in res.stdout
    ali = (trained_exp / "decode_test" / "alignments.txt").read_text()
    assert ali.count("REF") == 8 and ali.count("HYP") == 8
    scores = json.loads((trained_exp / "decode_test" / "scores.json").read_text())
    assert scores["ref_tokens"] > 0 and scores["utterances"] == 8


def test_bad_corpus_files_are_skipped_and_counted(tmp_path: Path) -> None:
    from lstm_asr.data.prep import prep
    from lstm_asr.recipe import load_recipe

    root = make_fake_timit(tmp_path / "c", n_train=2, n_dev=1, n_core=1, utts_per_speaker=4, seed=3)
    train_wavs = sorted(root.glob("TRAIN/*/*/S[XI]*.WAV"))
    train_wavs[0].write_bytes(train_wavs[0].read_bytes()[:1500])  # truncated SPHERE
    train_wavs[1].write_bytes(b"")  # empty
    phn = train_wavs[2].with_suffix(".PHN")
    phn.write_text(phn.read_text().replace("h#", "xx", 1))  # unknown symbol
    # More labels than frames: a 0.1 s file whose .PHN lists 30 phones.
    short = train_wavs[3]
    from data_prep.sphere import write_sphere

    write_sphere(short, np.zeros(1600, dtype=np.float32), 16000)
    short.with_suffix(".PHN").write_text("".join(f"{i * 50} {(i + 1) * 50} {'aa' if i % 2 else 'iy'}\n"
                                                 for i in range(30)))
    recipe = write_recipe(tmp_path / "r.yaml", root, tmp_path / "feats")
    reports = {r.split: r for r in prep(load_recipe(recipe), show_progress=False)}
    train = reports["train"]
    assert train.utterances == 4
    assert sum(train.skipped.values()) == 4
    summary = train.summary()
    assert "CTC-infeasible" in summary and str(train_wavs[2].with_suffix(".PHN")) in summary
    split = FeatureSplit(tmp_path / "feats" / "train")
    assert len(split) == 4 and split.dim == 123
    # A second prep reuses the store and reports the same skips.
    again = {r.split: r for r in prep(load_recipe(recipe), show_progress=False)}["train"]
    assert again.reused and again.skipped == train.skipped


def test_prep_is_redone_when_corpus_changes(tmp_path: Path) -> None:
    from lstm_asr.data.prep import prep
    from lstm_asr.recipe import load_recipe

    root = make_fake_timit(tmp_path / "c", n_train=2, n_dev=1, n_core=1, utts_per_speaker=2)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", root, tmp_path / "feats"))
    first = prep(recipe, show_progress=False)
    assert not any(r.reused for r in first)
    assert all(r.reused for r in prep(recipe, show_progress=False))
    wav = sorted(root.glob("TRAIN/*/*/S[XI]*.WAV"))[0]
    audio, sr = read_sphere(wav)
    from data_prep.sphere import write_sphere

    write_sphere(wav, audio * 0.5, sr)  # new content, new mtime
    third = {r.split: r for r in prep(recipe, show_progress=False)}
    assert not third["train"].reused and third["dev"].reused


def test_missing_corpus_is_one_line_error(tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tmp_path / "nowhere", tmp_path / "feats")
    res = run_cli("train", str(recipe), "--out", str(tmp_path / "exp"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0, res.stderr
    assert "nowhere" in res.stderr and "not found" in res.stderr and "Traceback" not in res.stderr


def test_recipe_errors_name_the_key_through_cli(tmp_path: Path, tiny_corpus: Path) -> None:
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats", training={"lrr": 0.1})
    res = run_cli("train", str(recipe))
    assert res.returncode == 1 and "training.lrr" in res.stderr and "did you mean 'lr'" in res.stderr
    res = run_cli("prep", str(recipe), "--set", "training.lrr=0.1", "--set", "model.hidden=big")
    assert res.returncode == 1 and "model.hidden" in res.stderr and "integer" in res.stderr


def test_training_is_seeded(tmp_path: Path, tiny_corpus: Path) -> None:
    from lstm_asr.nn.checkpoint import load_checkpoint
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats",
                                      training={"max_epochs": 2}))
    train(recipe, tmp_path / "a", show_progress=False)
    train(recipe, tmp_path / "b", show_progress=False)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    # A new run (not --resume) in a used folder starts a fresh log and keeps the earlier one aside.
    train(recipe, tmp_path / "a", show_progress=False)
    epochs = [[json.loads(x)["epoch"] for x in (tmp_path / "a" / name).read_text().splitlines()
               if json.loads(x)["kind"] == "epoch"] for name in ("metrics.jsonl", "metrics.jsonl.1")]
    assert epochs == [[1, 2], [1, 2]]


def test_decode_cli_uses_every_output_frame_of_a_frame_stacking_model(tiny_corpus: Path, tmp_path: Path) -> None:
    """The CLI's batched decoder must reduce the input lengths exactly once (a x3 model emits T/3 frames)."""
    from data_prep.audio import load_audio
    from data_prep.phones import TRAIN_PHONES
    from lstm_asr.data.tokens import TokenSet
    from lstm_asr.decoding.ctc_decode import greedy_decode
    from lstm_asr.decoding.recognizer import Recognizer
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.nn.model import BLSTMCTC, ModelConfig
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import model_checkpoint

    torch.manual_seed(0)
    tokens = TokenSet(list(TRAIN_PHONES)).symbols
    # An untrained network: its argmax changes often, so a truncated decode would lose tokens.
    model = BLSTMCTC(ModelConfig(input_dim=123, num_classes=len(tokens), hidden=8, layers=1, stack_frames=3,
                                 subsample=3))
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats"))
    save_checkpoint(model_checkpoint(model, recipe, tokens), tmp_path / "exp" / "best.pt")
    wav = sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0]
    res = run_cli("decode", "--model", str(tmp_path / "exp"), "--json", str(wav))
    assert res.returncode == 0, res.stderr
    got = [t["token"] for t in json.loads(res.stdout.strip().splitlines()[-1])["tokens"]]
    rec = Recognizer.load(tmp_path / "exp")
    lp = rec.log_probs(load_audio(wav, 16000))
    expect = greedy_decode(lp.unsqueeze(0), torch.tensor([lp.shape[0]]))[0]
    assert len(expect.tokens) > 5
    assert got == [rec.tokens[i] for i in expect.tokens]
