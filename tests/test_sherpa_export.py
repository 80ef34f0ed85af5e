"""``lstm-asr export --format sherpa-onnx``: the sherpa-onnx package decodes the exported folder with its own fbank
and greedy searches, and its transcripts equal ``lstm-asr decode``'s on generated test files (tiny models trained
here without log energy, which sherpa-onnx's fbank lacks): a CTC model, and a transducer with the stateless
prediction network (``model.pred_context``). Two implementations of one computation: equal by construction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_recipe
from streaming_models import make_model, write_checkpoint

from lstm_asr.errors import LstmAsrError
from lstm_asr.export.sherpa_export import WORD_START, export_sherpa, sherpa_recognizer, sherpa_transcribe

onnx = pytest.importorskip("onnx")
pytest.importorskip("sherpa_onnx")

NO_ENERGY = {"use_energy": False}


@pytest.fixture(scope="module")
def ctc_exp(tmp_path_factory, tiny_corpus: Path) -> Path:
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    work = tmp_path_factory.mktemp("sherpa_ctc")
    recipe = write_recipe(work / "r.yaml", tiny_corpus, work / "feats", features=NO_ENERGY,
                          model={"hidden": 32, "stack_frames": 2, "subsample": 2},
                          corpus={"dev_split": "train", "test_split": "train"}, training={"max_epochs": 25})
    train(load_recipe(recipe), work / "exp", show_progress=False)
    return work / "exp"


@pytest.fixture(scope="module")
def stateless_exp(tmp_path_factory) -> Path:
    """A random transducer with the stateless prediction network, its joint output sharpened so that its labels win
    by wide margins (it emits at many frames, reading its decoder's label context), as tests/streaming_models.py
    makes CTC models: the two implementations then agree on every label."""
    from dataclasses import asdict

    from lstm_asr.data.features import FeatureConfig
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.nn.model import ModelConfig
    from lstm_asr.nn.transducer import Transducer

    torch.manual_seed(0)
    feats = FeatureConfig(use_energy=False)
    tokens = ["<blank>", "aa", "b", "d", "iy", "s", "h#"]
    model = Transducer(ModelConfig(input_dim=feats.dim, num_classes=len(tokens), hidden=12, layers=2,
                                   stack_frames=2, subsample=2, head="transducer", pred_context=2, pred_hidden=10,
                                   joint_dim=10)).eval()
    with torch.no_grad():
        model.normalizer.mean.fill_(8.0)
        model.normalizer.inv_std.fill_(0.25)
        model.joint.output.weight.mul_(30)
    exp = tmp_path_factory.mktemp("stateless") / "exp"
    exp.mkdir()
    save_checkpoint({"model_config": asdict(model.config), "features": feats.to_dict(), "tokens": tokens,
                     "corpus_type": "timit", "recipe": {}, "state_dict": model.state_dict()}, exp / "best.pt")
    # lstm-asr decode reads the search settings from the experiment's recipe: sherpa-onnx's greedy search emits
    # one label per frame at most.
    write_recipe(exp / "recipe.yaml", exp, exp, decoding={"max_symbols": 1})
    return exp


def _wavs(tiny_corpus: Path) -> list[Path]:
    return sorted(tiny_corpus.glob("TRAIN/*/*/*.WAV")) + sorted(tiny_corpus.glob("TEST/*/*/*.WAV"))[:2]


def _ours(exp: Path, wavs: list[Path]) -> list[dict]:
    done = run_cli("decode", "--model", str(exp), "--json", *map(str, wavs))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _compare(out: Path, exp: Path, wavs: list[Path], frame_seconds: float, time_scale: float = 1.0) -> None:
    recognizer = sherpa_recognizer(out)
    ours = _ours(exp, wavs)
    emitted = 0
    for wav, mine in zip(wavs, ours, strict=True):
        theirs = sherpa_transcribe(recognizer, wav)
        tokens = [t.strip().replace(WORD_START, "") for t in theirs.tokens]
        assert tokens == [t["token"] for t in mine["tokens"]], wav
        assert theirs.text == mine["text"]  # phones: sherpa-onnx's word-start marks give the spaces
        times = [round(s * time_scale, 3) for s in theirs.timestamps]
        assert times == pytest.approx([t["start"] for t in mine["tokens"]], abs=frame_seconds / 2)
        emitted += len(tokens)
    assert emitted > 2 * len(wavs)  # the models say something: the comparison is not of empty transcripts


def test_ctc_export_decodes_in_sherpa_onnx_as_lstm_asr_does(ctc_exp: Path, tiny_corpus: Path, tmp_path: Path):
    done = run_cli("export", str(ctc_exp), "--format", "sherpa-onnx", "-o", str(tmp_path / "sherpa"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "sherpa"
    assert {p.name for p in out.iterdir()} == {"model.onnx", "tokens.txt", "README.md"}
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert meta["model_type"] == "fire-red-asr-2-ctc" and meta["subsampling_factor"] == "2"
    lines = (out / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "<blank> 0" and all(line.rsplit(" ", 1)[1] == str(i) for i, line in enumerate(lines))
    _compare(out, ctc_exp, _wavs(tiny_corpus), 0.02)


def test_stateless_transducer_exports_to_torchscript_and_sherpa_onnx(stateless_exp: Path, tiny_corpus: Path,
                                                                      tmp_path: Path):
    """(A trained one: tests/test_transducer.py trains both prediction networks.)"""
    from data_prep.audio import load_audio
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.recognition.recognizer import Recognizer

    wavs = _wavs(tiny_corpus)
    # TorchScript: the scripted stateless predictor drives the project's beam search as the eager one does.
    pt = tmp_path / "rnnt.pt"
    assert run_cli("export", str(stateless_exp), "-o", str(pt)).returncode == 0
    rec, scripted = Recognizer.load(stateless_exp), Recognizer.load(pt)
    for wav in wavs[:3]:
        enc = rec.log_probs(load_audio(wav))
        torch.testing.assert_close(scripted.log_probs(load_audio(wav)), enc, rtol=0, atol=1e-5)
        want, got = (r.searcher(SearchConfig(beam=4, max_symbols=2))(enc[None], torch.tensor([len(enc)]))[0][0]
                     for r in (rec, scripted))
        assert (got.tokens, got.frames) == (want.tokens, want.frames)
    done = run_cli("export", str(stateless_exp), "--format", "sherpa-onnx", "-o", str(tmp_path / "sherpa"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "sherpa"
    assert {p.name for p in out.iterdir()} == {"encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt",
                                               "README.md"}
    meta = {p.key: p.value for p in onnx.load(str(out / "decoder.onnx")).metadata_props}
    assert meta["context_size"] == "2" and meta["vocab_size"] == str(len(rec.tokens))
    # sherpa-onnx's offline transducer takes every encoder frame for 40 ms (a reduction of 4, as its zipformers
    # have) when it gives token times; this model's frames are 20 ms.
    _compare(out, stateless_exp, wavs, 0.02, time_scale=2 / 4)


def test_what_sherpa_onnx_cannot_run_is_a_one_line_error(trained_exp: Path, tmp_path: Path):
    done = run_cli("export", str(trained_exp), "--format", "sherpa-onnx", "-o", str(tmp_path / "x"))
    assert done.returncode == 1 and "features.use_energy: false" in done.stderr and "Traceback" not in done.stderr
    lstm_pred = tmp_path / "exp"
    from dataclasses import asdict

    from lstm_asr.data.features import FeatureConfig
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.nn.model import ModelConfig
    from lstm_asr.nn.transducer import Transducer

    model = Transducer(ModelConfig(input_dim=120, num_classes=5, hidden=8, layers=1, head="transducer",
                                   pred_hidden=8, joint_dim=8))
    lstm_pred.mkdir()
    save_checkpoint({"model_config": asdict(model.config), "features": FeatureConfig(use_energy=False).to_dict(),
                     "tokens": ["<blank>", "a", "b", "c", "d"], "corpus_type": "timit", "recipe": {},
                     "state_dict": model.state_dict()}, lstm_pred / "best.pt")
    with pytest.raises(LstmAsrError, match="model.pred_context"):
        export_sherpa(lstm_pred, tmp_path / "y")
    with pytest.raises(LstmAsrError, match="use_energy"):  # the streaming tests' models: Graves 2013's features
        export_sherpa(write_checkpoint(make_model(), tmp_path / "p"), tmp_path / "z")
