"""Every kind of model ``train`` makes exports to TorchScript and decodes as its experiment does (one test per
kind); the streaming export steps as the Python streaming pipeline does; int8 export and decode; ONNX where the
operators allow, a one-line reason where not."""

from __future__ import annotations

import copy
import importlib.util
import json
import random

import pytest
import torch
from conftest import run_cli
from streaming_models import make_model, write_checkpoint, write_speech_like_wav

from data_prep.audio import load_audio
from lstm_asr.data.features import compute_features
from lstm_asr.errors import LstmAsrError
from lstm_asr.export.onnx_export import export_onnx
from lstm_asr.export.torchscript import export_torchscript, network_for_export
from lstm_asr.nn.cells import PeepholeBiLSTMLayer
from lstm_asr.nn.streaming import StreamingPipeline
from lstm_asr.recognition.recognizer import Recognizer, ScriptedRecognizer

KINDS = {
    "lstm": {},
    "projection": dict(projection=6),
    "gru": dict(cell="gru"),
    "peephole": dict(cell="peephole"),
    "peephole_identity": dict(cell="peephole", peephole_output_activation="identity"),
    "stacked_subsampled": dict(stack_frames=3, subsample=3),  # the README's demo model
    "pyramid": dict(pyramid=1, layers=3),
    "unidirectional": dict(bidirectional=False),
    "latency_controlled": dict(chunk_frames=24, right_context=12, stack_frames=3, subsample=3),
}
EXACT = {"lstm", "projection", "gru", "stacked_subsampled", "pyramid", "unidirectional"}


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    return write_speech_like_wav(tmp_path_factory.mktemp("wav") / "utt.wav", seconds=1.6, seed=3)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_kind_exports_and_decodes_as_its_experiment(kind: str, wav, tmp_path) -> None:
    exp = write_checkpoint(make_model(**KINDS[kind]), tmp_path / "exp")
    out = export_torchscript(exp, tmp_path / "model.pt")
    exported, original = Recognizer.load(out), Recognizer.load(exp)
    assert isinstance(exported, ScriptedRecognizer) and exported.frame_seconds == original.frame_seconds
    wave = load_audio(wav)
    a, b = exported.log_probs(wave), original.log_probs(wave)
    if kind in EXACT:
        assert torch.equal(a, b)
    else:  # a hand-written recurrence or the streaming network: the same computation in another order
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)
        # float32 rounds the two orders apart by an amount that depends on the CPU's kernels (the identity-output
        # peephole's logits reach ~400: 2e-3 here, twice that with AVX2 kernels). The TorchScript equations are
        # checked in float64 too, where the two orders agree to ~1e-12 on any CPU.
        if isinstance(original.model.layers[0], PeepholeBiLSTMLayer):
            model = copy.deepcopy(original.model).double()
            feats = compute_features(wave, original.features).double()
            with torch.no_grad():
                torch.testing.assert_close(torch.jit.script(network_for_export(model))(feats),
                                           model(feats[None], torch.tensor([feats.shape[0]]))[0], rtol=0, atol=1e-9)
        # The transcripts below are equal by construction when every frame's best class leads the next by more
        # than twice the largest difference (make_model's sharpened output layer).
        best2 = b.topk(2, dim=-1).values
        assert (best2[:, 0] - best2[:, 1]).min() > 2 * (a - b).abs().max()
    got, want = exported.transcribe(wav).to_dict(), original.transcribe(wav).to_dict()
    if kind not in EXACT:  # the path score sums the (close) log-probs
        assert got.pop("score") == pytest.approx(want.pop("score"), abs=1e-2)
    assert got == want
    assert not torch.jit.load(str(out))(wave).requires_grad  # inference-only: no graph without torch.no_grad()


def test_export_cli_on_a_demo_like_model(wav, tmp_path) -> None:
    exp = write_checkpoint(make_model(stack_frames=3, subsample=3, layers=3), tmp_path / "exp")
    done = run_cli("export", str(exp), "-o", str(tmp_path / "model.pt"))
    assert done.returncode == 0, done.stderr
    a = run_cli("decode", "--model", str(tmp_path / "model.pt"), str(wav))
    b = run_cli("decode", "--model", str(exp), str(wav))
    assert a.returncode == 0 and a.stdout == b.stdout


@pytest.mark.parametrize("kind", ["latency_controlled", "lstm", "gru"])
def test_exported_step_equals_python_streaming(kind: str, wav, tmp_path) -> None:
    model = make_model(**KINDS[kind])
    exp = write_checkpoint(model, tmp_path / "exp")
    chunk = 0 if model.config.chunk_frames else 12
    out = export_torchscript(exp, tmp_path / "stream.pt", streaming=True, chunk_frames=chunk, right_context=-1
                             if not chunk else 6)
    scripted = torch.jit.load(str(out))
    rec = Recognizer.load(exp)
    python = StreamingPipeline(rec.model, rec.features, chunk, -1 if not chunk else 6)
    assert int(scripted.chunk_frames) == python.chunk_frames and list(scripted.tokens) == rec.tokens
    wave = load_audio(wav)
    rng = random.Random(0)
    s1, s2, t, outs1, outs2 = scripted.initial_state(), python.initial_state(), 0, [], []
    with torch.inference_mode():
        while t < wave.numel():
            n = rng.randint(0, 3000)
            o1, s1 = scripted.step(wave[t: t + n], s1)
            o2, s2 = python.step(wave[t: t + n], s2)
            outs1.append(o1)
            outs2.append(o2)
            t += n
        outs1.append(scripted.finish(s1)[0])
        outs2.append(python.finish(s2)[0])
    assert torch.equal(torch.cat(outs1), torch.cat(outs2))
    if model.config.chunk_frames:  # a latency-controlled model streams what it decodes whole
        torch.testing.assert_close(torch.cat(outs1), rec.log_probs(wave), rtol=0, atol=1e-4)
    # The streaming file also decodes whole files, and streams in lstm-asr decode --stream.
    done = run_cli("decode", "--stream", "--model", str(out), "--endpoint-seconds", "0", str(wav))
    assert done.returncode == 0, done.stderr


def test_int8_export_and_decode(wav, tmp_path) -> None:
    exp = write_checkpoint(make_model(layers=2, hidden=24, stack_frames=3, subsample=3), tmp_path / "exp")
    done = run_cli("export", str(exp), "-o", str(tmp_path / "q.pt"), "--quantize", "int8")
    assert done.returncode == 0, done.stderr
    quant = Recognizer.load(tmp_path / "q.pt")
    in_python = Recognizer.load(exp).quantize("int8")
    assert isinstance(in_python.model.layers[0].fwd, torch.ao.nn.quantized.dynamic.LSTM)
    wave = load_audio(wav)
    with torch.inference_mode():
        torch.testing.assert_close(quant.log_probs(wave), in_python.log_probs(wave), rtol=0, atol=1e-5)
    a = run_cli("decode", "--model", str(exp), "--quantize", "int8", "--json", str(wav))
    assert a.returncode == 0, a.stderr
    chunked = write_checkpoint(make_model(**KINDS["latency_controlled"]), tmp_path / "chunked")
    with torch.inference_mode():  # a latency-controlled int8 model decodes whole too (cell states dequantized)
        assert Recognizer.load(chunked).quantize("int8").transcribe(wav).duration > 0
    bad = run_cli("export", str(exp), "-o", str(tmp_path / "x.pt"), "--quantize", "int4")
    assert bad.returncode == 1 and "unknown --quantize 'int4'" in bad.stderr


@pytest.mark.parametrize("kind", ["lstm", "gru", "stacked_subsampled", "pyramid", "unidirectional", "peephole",
                                  "projection",
                                  "latency_controlled"])
def test_onnx_where_the_operators_allow(kind: str, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    exp = write_checkpoint(make_model(**KINDS[kind]), tmp_path / "exp")
    if kind in ("peephole", "projection", "latency_controlled"):
        with pytest.raises(LstmAsrError, match="cannot export to ONNX: .*use TorchScript") as err:
            export_onnx(exp, tmp_path / "m.onnx")
        assert "\n" not in str(err.value)
        return
    out = export_onnx(exp, tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(str(out)))


ONNX_KINDS = ["lstm", "gru", "stacked_subsampled", "pyramid", "unidirectional"]


@pytest.mark.parametrize("kind", ONNX_KINDS)
def test_onnx_runtime_runs_every_onnx_file_as_pytorch_does(kind: str, wav, tmp_path) -> None:
    """ONNX Runtime's log-probs equal PyTorch's to float rounding at lengths other than the export's example (the
    frame axis is dynamic), and ``Recognizer.load`` of the .onnx file decodes as the experiment does."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from lstm_asr.recognition.recognizer import OnnxRecognizer

    exp = write_checkpoint(make_model(**KINDS[kind]), tmp_path / "exp")
    out = export_onnx(exp, tmp_path / "m.onnx")
    onnx_rec, original = Recognizer.load(out), Recognizer.load(exp)
    assert isinstance(onnx_rec, OnnxRecognizer) and onnx_rec.frame_seconds == original.frame_seconds
    wave = load_audio(wav)
    for n in (wave.numel(), 4000, 12345):  # 1.6 s, and two lengths that leave partial stacks
        torch.testing.assert_close(onnx_rec.log_probs(wave[:n]), original.log_probs(wave[:n]), rtol=1e-4,
                                   atol=1e-4)
    got, want = onnx_rec.transcribe(wav).to_dict(), original.transcribe(wav).to_dict()
    assert got.pop("score") == pytest.approx(want.pop("score"), abs=1e-3)
    assert got == want


def test_decode_cli_reads_an_onnx_file(wav, tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    exp = write_checkpoint(make_model(**KINDS["stacked_subsampled"]), tmp_path / "exp")
    done = run_cli("export", str(exp), "-o", str(tmp_path / "m.onnx"), "--format", "onnx")
    assert done.returncode == 0, done.stderr
    a = run_cli("decode", "--model", str(tmp_path / "m.onnx"), "--json", str(wav), str(wav))
    b = run_cli("decode", "--model", str(exp), "--json", str(wav), str(wav))
    assert a.returncode == 0, a.stderr
    got, want = ([json.loads(line) for line in done.stdout.splitlines()] for done in (a, b))
    for g, w in zip(got, want, strict=True):
        assert g.pop("score") == pytest.approx(w.pop("score"), abs=1e-3)
    assert got == want and len(got) == 2
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    bad = run_cli("decode", "--model", str(tmp_path / "junk.onnx"), str(wav))
    assert bad.returncode == 1 and "not a readable ONNX model" in bad.stderr and "Traceback" not in bad.stderr


def test_handwriting_model_exports_with_its_ink_normalisation(tmp_path) -> None:
    """Strokes in, the ink front end (repair, deskew, deslant, resampling, point features) inside the file."""
    from dataclasses import asdict

    import numpy as np

    from data_prep.iam_ondb import write_strokes
    from data_prep.ink import Ink
    from lstm_asr.data.ink_features import InkFeatureConfig
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.nn.model import BLSTMCTC, ModelConfig
    from lstm_asr.recognition.ink_decode import transcribe_ink

    torch.manual_seed(0)
    tokens = ["<blank>", "a", "b", "c", "|"]
    model = BLSTMCTC(ModelConfig(input_dim=5, num_classes=len(tokens), hidden=10, layers=2)).eval()
    with torch.no_grad():
        model.output.weight.mul_(30)
    (tmp_path / "exp").mkdir()
    save_checkpoint({"model_config": asdict(model.config), "features": InkFeatureConfig().to_dict(),
                     "tokens": tokens, "corpus_type": "ondb", "recipe": {}, "state_dict": model.state_dict()},
                    tmp_path / "exp" / "best.pt")
    rng = np.random.default_rng(0)
    strokes = []
    for k in range(8):  # loops along a slanted, slightly skewed line, with a repeated time stamp
        u = np.linspace(0, 2 * np.pi, 40)
        x = 100 * k + 30 * np.sin(u) + 12 * np.cos(3 * u) + 0.2 * 100 * k
        y = 500 + 40 * np.cos(u) + 0.05 * 100 * k + rng.normal(0, 0.5, u.size)
        t = 10.0 + k + u / 10
        t[5] = t[4]
        strokes.append(np.stack([x, y, t], axis=1))
    path = tmp_path / "line.xml"
    write_strokes(path, Ink(strokes))
    out = export_torchscript(tmp_path / "exp", tmp_path / "ink.pt")
    exported, original = Recognizer.load(out), Recognizer.load(tmp_path / "exp")
    assert exported.input_type == "ink"
    a, b = transcribe_ink(exported, path).to_dict(), transcribe_ink(original, path).to_dict()
    a_score = b.pop("score")
    assert a.pop("score") == pytest.approx(a_score, abs=1e-3)
    assert a == b
    done = run_cli("decode", "--model", str(out), str(path))
    assert done.returncode == 0 and done.stdout == run_cli("decode", "--model", str(tmp_path / "exp"), str(path)).stdout
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):  # the network in ONNX Runtime
        onnx_rec = Recognizer.load(export_onnx(tmp_path / "exp", tmp_path / "ink.onnx"))
        c = transcribe_ink(onnx_rec, path).to_dict()
        assert c.pop("score") == pytest.approx(a_score, abs=1e-3)
        assert c == b
