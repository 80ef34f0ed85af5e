"""``lstm-asr export --format sherpa-onnx`` for streaming: sherpa-onnx's ``OnlineRecognizer`` decodes the exported
``online/`` folder with its own fbank, chunking and greedy searches, and its transcripts equal ``lstm-asr decode``'s
on generated test files, for unidirectional and latency-controlled CTC models and a unidirectional transducer with
the stateless prediction network. Two implementations of one computation, compared on random models whose outputs
are sharpened so that their labels win by wide margins (as tests/streaming_models.py makes them): equal by
construction, so nothing here depends on what a model has learnt.

What is compared: every output frame sherpa-onnx computes from the audio alone. It never decodes the last frames of
a stream (a call needs ``T + 1`` frames past its start: lstm_asr/export/sherpa_online.py), so lstm-asr's tokens
are those starting before the first frame it leaves out; the test checks that this leaves at most ``T`` input
frames, and that with the README's tail of silence every frame of the file whose context stays inside it is
compared.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import run_cli, write_recipe
from streaming_models import TOKENS

from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.errors import LstmAsrError
from lstm_asr.export.sherpa_export import WORD_START
from lstm_asr.export.sherpa_folder import export_sherpa_folder

onnx = pytest.importorskip("onnx")
pytest.importorskip("sherpa_onnx")

from lstm_asr.export.sherpa_online import online_recognizer, online_transcribe  # noqa: E402

FEATURES = FeatureConfig(use_energy=False)
KINDS = {  # model options of the CTC models compared
    "unidirectional": dict(bidirectional=False, stack_frames=3, subsample=2, pyramid=1),
    "unidirectional_gru": dict(bidirectional=False, cell="gru"),
    "latency_controlled": dict(chunk_frames=12, right_context=6, stack_frames=3, subsample=3),
    "latency_controlled_pyramid": dict(chunk_frames=8, right_context=4, pyramid=1),
}


def _wavs(tiny_corpus: Path) -> list[Path]:
    return sorted(tiny_corpus.glob("TRAIN/*/*/*.WAV"))[:4] + sorted(tiny_corpus.glob("TEST/*/*/*.WAV"))[:1]


def _samples(wav: Path) -> np.ndarray:
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return audio[:, 0]


def _normalise(model: torch.nn.Module, wavs: list[Path]) -> None:
    """The model's input statistics from the test audio itself, so that its random layers see varied inputs and
    say many labels."""
    feats = torch.cat([compute_features(torch.from_numpy(_samples(w)), FEATURES) for w in wavs])
    model.normalizer.mean.copy_(feats.mean(0))
    model.normalizer.inv_std.copy_(feats.std(0).clamp_min(1e-3).reciprocal())


def _save(model: torch.nn.Module, exp: Path, features: FeatureConfig = FEATURES) -> Path:
    from lstm_asr.nn.checkpoint import save_checkpoint

    exp.mkdir(parents=True)
    save_checkpoint({"model_config": asdict(model.config), "features": features.to_dict(), "tokens": TOKENS,
                     "corpus_type": "timit", "recipe": {}, "state_dict": model.state_dict()}, exp / "best.pt")
    return exp


def _ctc_exp(tmp: Path, wavs: list[Path], features: FeatureConfig = FEATURES, **options) -> Path:
    from lstm_asr.nn.model import BLSTMCTC, ModelConfig

    torch.manual_seed(0)
    config = ModelConfig(input_dim=FEATURES.dim, num_classes=len(TOKENS), hidden=options.pop("hidden", 16),
                         layers=options.pop("layers", 2), **options)
    model = BLSTMCTC(config).eval()
    with torch.no_grad():
        _normalise(model, wavs)
        model.output.weight.mul_(30)
    return _save(model, tmp / "exp", features)


def _transducer_exp(tmp: Path, wavs: list[Path]) -> Path:
    from lstm_asr.nn.model import ModelConfig
    from lstm_asr.nn.transducer import Transducer

    torch.manual_seed(0)
    model = Transducer(ModelConfig(input_dim=FEATURES.dim, num_classes=len(TOKENS), hidden=16, layers=2,
                                   bidirectional=False, stack_frames=2, subsample=2, head="transducer",
                                   pred_context=2, pred_hidden=10, joint_dim=10)).eval()
    with torch.no_grad():
        _normalise(model, wavs)
        model.joint.output.weight.mul_(30)
    exp = _save(model, tmp / "exp")
    write_recipe(exp / "recipe.yaml", exp, exp, decoding={"max_symbols": 1})  # sherpa-onnx: one label a frame
    return exp


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _decoded_frames(num_samples: int, window: int, shift: int) -> int:
    """Input frames sherpa-onnx decodes from ``num_samples`` samples: whole calls of ``shift`` frames, each made
    once ``window + 1`` frames exist from its start (OnlineRecognizer*Impl::IsReady)."""
    frames = FEATURES.num_frames(num_samples)
    calls = 0
    while calls * shift + window < frames:
        calls += 1
    return calls * shift


def _ours(exp: Path, wavs: list[Path]) -> list[list[dict]]:
    done = run_cli("decode", "--model", str(exp), "--json", *map(str, wavs))
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["tokens"] for line in done.stdout.splitlines()]


def _theirs(result, reduction: int) -> list[tuple[str, int]]:
    """sherpa-onnx's tokens and their output frames (it takes every output frame for 40 ms)."""
    return [(t.strip().replace(WORD_START, ""), round(s * 100 / 4)) for t, s in zip(result.tokens, result.timestamps,
                                                                                     strict=True)]


def _compare(online: Path, exp: Path, wavs: list[Path], tail: bool = False) -> int:
    """sherpa-onnx's streaming transcript of each file (fed in 0.1 s pieces) equals ``lstm-asr decode``'s up to the
    frames it decodes; returns the number of tokens compared."""
    meta = _meta(online / ("model.onnx" if (online / "model.onnx").is_file() else "encoder.onnx"))
    window, shift = int(meta["T"]), int(meta["decode_chunk_len"])
    reduction = int(meta["frame_reduction"])
    lookahead = window - shift
    recognizer = online_recognizer(online)
    compared = 0
    for wav, mine in zip(wavs, _ours(exp, wavs), strict=True):
        samples = _samples(wav)
        frames = FEATURES.num_frames(samples.size)
        if tail:  # the README's tail of silence: all of the file is decoded; its last frames read the silence (a
            # unidirectional model: an output frame reads no further than `lookahead` frames past its own)
            result = online_transcribe(recognizer, samples, 16000, block=1600, tail=window * 160)
            exact = frames - lookahead
        else:
            result = online_transcribe(recognizer, samples, 16000, block=1600)
            exact = _decoded_frames(samples.size, window, shift)
            assert frames - exact <= window  # what is left undecoded at the end: less than one call's frames
        limit = exact // reduction  # output frames computed from the audio alone, as lstm-asr computes them
        want = [(t["token"], round(t["start"] * 100 / reduction)) for t in mine]
        theirs = _theirs(result, reduction)
        assert [x for x in theirs if x[1] < limit] == [x for x in want if x[1] < limit], wav
        compared += sum(x[1] < limit for x in want)
    return compared


@pytest.fixture(scope="module")
def wavs(tiny_corpus: Path) -> list[Path]:
    return _wavs(tiny_corpus)


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_ctc_decodes_in_sherpa_onnx_as_lstm_asr_does(kind: str, wavs: list[Path], tmp_path: Path):
    exp = _ctc_exp(tmp_path, wavs, **dict(KINDS[kind]))
    latency_controlled = "right_context" in KINDS[kind]
    # Short calls (a unidirectional model takes any multiple of its frame-rate reduction): more of each short file
    # is decoded, and more calls carry their states to the next.
    out = export_sherpa_folder(exp, tmp_path / "sherpa", chunk_frames=0 if latency_controlled else 16)
    online = out / "online"
    assert {p.name for p in online.iterdir()} == {"model.onnx", "tokens.txt", "README.md"}
    # A latency-controlled model has no offline graph (ONNX unrolls its chunk loop); a unidirectional one has both.
    assert (out / "model.onnx").is_file() != latency_controlled
    assert "online/" in (out / "README.md").read_text()
    assert _meta(online / "model.onnx")["model_type"] == "zipformer2_ctc"
    assert _compare(online, exp, wavs) > 2 * len(wavs)  # the models say something: not empty transcripts compared
    if kind == "unidirectional":
        assert _compare(online, exp, wavs[:2], tail=True) > 0


def test_onnx_runtime_streams_the_network_as_pytorch_computes_it(wavs: list[Path], tmp_path: Path):
    """Numbers, not labels: the exported graph run chunk by chunk with ONNX Runtime on Kaldi fbank frames, two
    streams in a batch (sherpa-onnx stacks the states of the streams it decodes together), gives the experiment's
    log-probabilities to float rounding."""
    import onnxruntime as ort
    import torchaudio.compliance.kaldi as kaldi

    from lstm_asr.export.sherpa_online import zipformer2_states
    from lstm_asr.recognition.recognizer import Recognizer

    exp = _ctc_exp(tmp_path, wavs, **dict(KINDS["latency_controlled_pyramid"]))
    online = export_sherpa_folder(exp, tmp_path / "sherpa") / "online"
    meta = _meta(online / "model.onnx")
    window, shift, reduction = int(meta["T"]), int(meta["decode_chunk_len"]), int(meta["frame_reduction"])
    rec = Recognizer.load(exp)
    session = ort.InferenceSession(str(online / "model.onnx"), providers=["CPUExecutionProvider"])
    names, zeros, axes = zipformer2_states(rec)
    audio = [torch.from_numpy(_samples(w)) for w in wavs[:2]]
    fbank = [kaldi.fbank(a.unsqueeze(0) * 32768, num_mel_bins=FEATURES.num_mel_bins, use_energy=False, dither=0.0,
                         energy_floor=1.0) for a in audio]
    calls = min(_decoded_frames(a.numel(), window, shift) for a in audio) // shift
    states = [torch.cat([z, z], dim=axis).numpy() for z, axis in zip(zeros, axes, strict=True)]
    outputs = []
    for k in range(calls):
        x = np.stack([f[k * shift: k * shift + window].numpy() for f in fbank])
        result = session.run(None, {"x": x, **dict(zip(names, states, strict=True))})
        outputs.append(result[0])
        states = result[1:]
    got = torch.from_numpy(np.concatenate(outputs, axis=1))
    for b, a in enumerate(audio):
        want = rec.log_probs(a)[: calls * shift // reduction]
        torch.testing.assert_close(got[b], want, rtol=0, atol=1e-4)


def test_streaming_transducer_decodes_in_sherpa_onnx_as_lstm_asr_does(wavs: list[Path], tmp_path: Path):
    exp = _transducer_exp(tmp_path, wavs)
    done = run_cli("export", str(exp), "--format", "sherpa-onnx", "--streaming", "--chunk-frames", "16", "-o",
                   str(tmp_path / "sherpa"))
    assert done.returncode == 0, done.stderr
    online = tmp_path / "sherpa" / "online"
    assert {p.name for p in online.iterdir()} == {"encoder.onnx", "decoder.onnx", "joiner.onnx", "tokens.txt",
                                                  "README.md"}
    meta = _meta(online / "encoder.onnx")
    assert meta["model_type"] == "lstm" and meta["decode_chunk_len"] == "16"
    assert int(meta["T"]) == 16 + 2 * FEATURES.deltas  # the deltas' look-ahead (stacking 2 frames every 2: none)
    assert _compare(online, exp, wavs) > 2 * len(wavs)
    # Several streams decoded together (sherpa-onnx stacks their states along the batch axis): each its own result.
    recognizer = online_recognizer(online)
    streams = []
    for wav in wavs[:3]:
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, _samples(wav))
        stream.input_finished()
        streams.append(stream)
    while any(recognizer.is_ready(s) for s in streams):
        recognizer.decode_streams([s for s in streams if recognizer.is_ready(s)])
    alone = [online_transcribe(recognizer, _samples(wav), 16000).tokens for wav in wavs[:3]]
    assert [recognizer.get_result(s).tokens for s in streams] == alone


def test_what_cannot_stream_is_a_one_line_error_or_a_note(wavs: list[Path], tmp_path: Path):
    bidirectional = _ctc_exp(tmp_path / "bi", wavs)
    export_sherpa_folder(bidirectional, tmp_path / "x")  # the offline model alone, and a note of why
    assert (tmp_path / "x" / "model.onnx").is_file() and not (tmp_path / "x" / "online").exists()
    assert "No streaming model: a bidirectional model" in (tmp_path / "x" / "README.md").read_text()
    done = run_cli("export", str(bidirectional), "--format", "sherpa-onnx", "--streaming", "-o", str(tmp_path / "y"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "online recognizer: a bidirectional model reads whole utterances" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    from lstm_asr.nn.model import ModelConfig
    from lstm_asr.nn.transducer import Transducer

    lstm_pred = Transducer(ModelConfig(input_dim=FEATURES.dim, num_classes=len(TOKENS), hidden=8, layers=1,
                                       bidirectional=False, head="transducer", pred_hidden=8, joint_dim=8))
    with pytest.raises(LstmAsrError, match="model.pred_context"):
        export_sherpa_folder(_save(lstm_pred, tmp_path / "pred"), tmp_path / "z", streaming=True)
    exp = _ctc_exp(tmp_path / "lc", wavs, chunk_frames=12, right_context=6, stack_frames=3, subsample=3)
    with pytest.raises(LstmAsrError, match="its own chunks of 12 frames"):
        export_sherpa_folder(exp, tmp_path / "w", chunk_frames=24)
    export_sherpa_folder(exp, tmp_path / "v")
    assert "No offline model: a latency-controlled model" in (tmp_path / "v" / "README.md").read_text()
    from dataclasses import replace

    utterance = _ctc_exp(tmp_path / "utt", wavs, replace(FEATURES, normalize="utterance"), bidirectional=False)
    with pytest.raises(LstmAsrError, match="features.normalize: utterance"):
        export_sherpa_folder(utterance, tmp_path / "u")
