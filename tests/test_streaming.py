"""Latency-controlled models and streaming: the batched chunked pass equals streaming chunk by chunk, look-ahead
bounds what a chunk sees, streamed features and searches equal whole-utterance ones, and ``decode --stream``
(file, stdin raw or WAV) gives what ``decode`` gives, with one-line errors for bad input."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import assert_padding_safe, run_cli
from streaming_models import make_model, write_checkpoint, write_speech_like_wav

from data_prep.audio import load_audio
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.kaldi_fbank import StreamingFbank
from lstm_asr.decoding.ctc_decode import PrefixBeamSearch, greedy_decode, prefix_beam_search
from lstm_asr.decoding.stream_search import GreedyStream
from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.nn.streaming import StreamingNetwork
from lstm_asr.recipe import recipe_from_dict
from lstm_asr.recognition.recognizer import Recognizer
from lstm_asr.recognition.stream_recognizer import StreamingRecognizer, StreamSettings

KINDS = {
    "lstm": dict(chunk_frames=4, right_context=2),
    "lstm_no_look_ahead": dict(chunk_frames=4, right_context=0),
    "stacked": dict(chunk_frames=6, right_context=6, stack_frames=3, subsample=3),
    "pyramid": dict(chunk_frames=8, right_context=4, pyramid=1),
    "gru": dict(chunk_frames=4, right_context=4, cell="gru"),
    "projection": dict(chunk_frames=4, right_context=6, projection=3),
    "stacked_pyramid": dict(chunk_frames=12, right_context=12, stack_frames=3, subsample=3, pyramid=1, layers=3),
    "unidirectional": dict(bidirectional=False, chunk_frames=3),
}


def _model(options: dict) -> BLSTMCTC:
    options = dict(options)
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=5, num_classes=6, hidden=7, layers=options.pop("layers", 2),
                                 **options)).double().eval()
    with torch.no_grad():
        model.normalizer.mean.normal_()
    return model


def _stream(net: StreamingNetwork, x: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """Feed ``x`` (T, D) in random pieces (empty ones included), then end the stream."""
    state = {k: v.double() for k, v in net.initial_state().items()}
    outs, t = [], 0
    while t < x.shape[0]:
        n = rng.randint(0, 5)
        out, state = net.step(x[t: t + n], state)
        outs.append(out)
        t += n
    outs.append(net.step(x[:0], state, True)[0])
    return torch.cat(outs)


@pytest.mark.parametrize("kind", list(KINDS))
def test_batched_chunked_pass_equals_streaming_chunk_by_chunk(kind: str) -> None:
    model = _model(KINDS[kind])
    x = torch.randn(3, 23, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([23, 11, 17])
    net = StreamingNetwork(model).double()
    rng = random.Random(0)
    with torch.no_grad():
        whole = model(x, lengths)
        out_lengths = model.output_lengths(lengths)
        for b in range(3):
            streamed = _stream(net, x[b, : int(lengths[b])], rng)
            assert streamed.shape[0] == int(out_lengths[b])
            torch.testing.assert_close(streamed, whole[b, : int(out_lengths[b])], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "lstm_no_look_ahead", "gru", "projection"])  # no frame reduction
def test_chunked_model_is_padding_safe(kind: str) -> None:
    assert_padding_safe(_model(KINDS[kind]))


@pytest.mark.parametrize("right", [0, 2, 6])
def test_a_chunk_sees_no_further_than_its_look_ahead(right: int) -> None:
    """Changing input frames after chunk k's window never changes chunk k's outputs: latency is bounded by
    chunk + look-ahead, whatever the depth (and a whole-utterance BLSTM has no such bound)."""
    model = _model(dict(chunk_frames=4, right_context=right, layers=3))
    x = torch.randn(1, 24, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    changed = x.clone()
    changed[0, 8 + right:] += 3.0  # everything after the window of chunk 1 (frames 4..7 + look-ahead)
    with torch.no_grad():
        a, b = model(x, torch.tensor([24])), model(changed, torch.tensor([24]))
    assert torch.equal(a[0, :8], b[0, :8])
    assert not torch.allclose(a[0, 8:], b[0, 8:])
    whole = _model({})
    with torch.no_grad():
        assert not torch.allclose(whole(x, torch.tensor([24]))[0, :8], whole(changed, torch.tensor([24]))[0, :8])


def test_unidirectional_model_is_causal_and_smaller() -> None:
    uni, bi = _model(dict(bidirectional=False)), _model({})
    assert uni.num_parameters() < bi.num_parameters()
    x = torch.randn(1, 10, 5, dtype=torch.float64)
    changed = x.clone()
    changed[0, 6:] = 0
    with torch.no_grad():
        assert torch.equal(uni(x, torch.tensor([10]))[0, :6], uni(changed, torch.tensor([10]))[0, :6])


def test_chunking_keys_are_checked_with_one_line_errors() -> None:
    base = {"corpus": {"path": "x"}, "model": {"stack_frames": 3, "subsample": 3}}
    with pytest.raises(RecipeError, match=r"r.yaml: model.chunk_frames: 40 is not a multiple .* use 39 or 42"):
        recipe_from_dict({**base, "model": {**base["model"], "chunk_frames": 40}}, "r.yaml")
    with pytest.raises(RecipeError, match="model.chunk_frames: latency-controlled .* not 'peephole'"):
        recipe_from_dict({"corpus": {"path": "x"}, "model": {"cell": "peephole", "chunk_frames": 40}}, "r.yaml")
    with pytest.raises(RecipeError, match="model.right_context: needs model.chunk_frames"):
        recipe_from_dict({"corpus": {"path": "x"}, "model": {"right_context": 10}}, "r.yaml")
    with pytest.raises(RecipeError, match="model.right_context: a unidirectional model"):
        recipe_from_dict({"corpus": {"path": "x"}, "model": {"bidirectional": False, "chunk_frames": 10,
                                                              "right_context": 10}}, "r.yaml")
    with pytest.raises(LstmAsrError, match="give a chunk size"):
        StreamingNetwork(_model({}))


def test_streamed_features_equal_whole_recording_features() -> None:
    wave = torch.randn(12345, generator=torch.Generator().manual_seed(3)) * 0.1
    rng = random.Random(1)
    for cfg in (FeatureConfig(), FeatureConfig(deltas=0), FeatureConfig(deltas=1, use_energy=False)):
        fb = StreamingFbank(cfg)
        state, outs, t = fb.initial_state(), [], 0
        while t < wave.numel():
            n = rng.randint(0, 900)
            out, state = fb.step(wave[t: t + n], state)
            outs.append(out)
            t += n
        outs.append(fb.step(wave[:0], state, True)[0])
        torch.testing.assert_close(torch.cat(outs), compute_features(wave, cfg), rtol=0, atol=1e-4)


def test_searches_continue_from_their_state() -> None:
    rng = random.Random(2)
    gen = torch.Generator().manual_seed(4)
    for _ in range(60):
        steps, vocab = rng.randint(0, 25), rng.randint(2, 5)
        lp = torch.log_softmax(torch.randn(steps, vocab, generator=gen) * 3, -1)
        greedy, search, pruned, t = GreedyStream(), PrefixBeamSearch(beam=4), PrefixBeamSearch(
            beam=4, beam_prune_logprob=10.0, token_min_logprob=-5.0), 0
        while t < steps:
            n = rng.randint(0, 4)
            for s in (greedy, search, pruned):
                s.advance(lp[t: t + n])
            t += n
        assert greedy.final()[0] == greedy_decode(lp[None], torch.tensor([steps]))[0] or \
            abs(greedy.final()[0].score - greedy_decode(lp[None], torch.tensor([steps]))[0].score) < 1e-9
        for s, kw in ((search, {}), (pruned, dict(beam_prune_logprob=10.0, token_min_logprob=-5.0))):
            got, want = s.hypotheses(3), prefix_beam_search(lp, beam=4, nbest=3, **kw)
            assert [(h.tokens, h.frames) for h in got] == [(h.tokens, h.frames) for h in want]
            assert np.allclose([h.score for h in got], [h.score for h in want], rtol=0, atol=1e-9)


@pytest.fixture(scope="module")
def chunked_exp(tmp_path_factory) -> tuple:
    tmp = tmp_path_factory.mktemp("stream")
    exp = write_checkpoint(make_model(chunk_frames=12, right_context=6, stack_frames=3, subsample=3), tmp / "exp")
    return exp, write_speech_like_wav(tmp / "utt.wav", seconds=2.5)


@pytest.mark.parametrize("beam", [1, 4])
def test_streaming_recognizer_equals_whole_utterance_decoding(chunked_exp, beam: int) -> None:
    exp, wav = chunked_exp
    rec = Recognizer.load(exp)
    whole = rec.transcribe(wav, beam=beam)
    stream = StreamingRecognizer(rec, StreamSettings(endpoint_seconds=0, search=__import__(
        "lstm_asr.decoding.search", fromlist=["SearchConfig"]).SearchConfig(beam=beam))).open()
    samples = load_audio(wav).numpy()
    updates = []
    for i in range(0, samples.size, 1500):
        updates += stream.feed(samples[i: i + 1500])
    final = stream.finish()
    assert whole.tokens and final.tokens == whole.tokens
    assert [round(s, 6) for s, _ in final.times] == [round(s, 6) for s, _ in whole.times]
    partials = [u for u in updates if u.kind == "partial"]
    assert partials and all(u.tokens == final.tokens[: len(u.tokens)] for u in partials if beam == 1)


def test_decode_stream_cli_from_a_file_and_from_stdin(chunked_exp, tmp_path) -> None:
    exp, wav = chunked_exp
    want = run_cli("decode", "--model", str(exp), str(wav)).stdout.split("\t")[1].strip()
    done = run_cli("decode", "--stream", "--json", "--model", str(exp), "--endpoint-seconds", "0", str(wav))
    assert done.returncode == 0, done.stderr
    updates = [json.loads(line) for line in done.stdout.splitlines()]
    assert updates[-1]["type"] == "final" and updates[-1]["text"] == want
    assert all(u["type"] == "partial" for u in updates[:-1]) and all("latency_ms" in u for u in updates)
    raw = (load_audio(wav).numpy() * 32768).round().astype("<i2").tobytes()
    for data in (raw, wav.read_bytes(), raw + b"\x01"):  # raw PCM, a WAV stream, a pipe ending mid-sample
        piped = subprocess.run([sys.executable, "-m", "lstm_asr", "decode", "--stream", "--model", str(exp),
                                "--endpoint-seconds", "0", "-"], input=data, capture_output=True, timeout=300)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout.decode().strip() == want
        assert (b"ended mid-sample" in piped.stderr) == (data == raw + b"\x01")


def test_the_stream_verb_is_decode_stream(chunked_exp) -> None:
    """``lstm-asr stream`` and ``lstm-asr decode --stream`` are two spellings of one command."""
    exp, wav = chunked_exp

    def updates(*args: str) -> list:
        done = run_cli(*args, "--json", "--model", str(exp), "--endpoint-seconds", "0", str(wav))
        assert done.returncode == 0, done.stderr
        return [{k: v for k, v in json.loads(line).items() if k not in ("latency_ms", "lag_ms")}
                for line in done.stdout.splitlines()]

    spelled_old = updates("decode", "--stream")
    assert spelled_old and spelled_old[-1]["type"] == "final"
    assert updates("stream") == spelled_old
    raw = (load_audio(wav).numpy() * 32768).round().astype("<i2").tobytes()
    piped = subprocess.run([sys.executable, "-m", "lstm_asr", "stream", "--model", str(exp), "--endpoint-seconds",
                            "0", "-"], input=raw, capture_output=True, timeout=300)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.decode().strip() == spelled_old[-1]["text"]
    done = run_cli("stream", "--realtime", "--model", str(exp), "-")
    assert done.returncode == 1 and "--realtime paces a file" in done.stderr


def test_decode_stream_bad_input_is_one_line(chunked_exp, tmp_path) -> None:
    exp, wav = chunked_exp
    stereo = tmp_path / "stereo44.wav"
    import soundfile as sf

    sf.write(stereo, np.zeros((4410, 2), dtype=np.float32), 44100, subtype="PCM_16")
    piped = subprocess.run([sys.executable, "-m", "lstm_asr", "decode", "--stream", "--model", str(exp), "-"],
                           input=stereo.read_bytes(), capture_output=True, timeout=300)
    err = piped.stderr.decode().strip()
    assert piped.returncode == 1 and len(err.splitlines()) == 1
    assert "2 channel(s) at 44100 Hz" in err and "arecord -f S16_LE -r 16000 -c 1" in err
    # No microphone here (no sounddevice, no PortAudio or no input device): one line that says what to do.
    done = run_cli("decode", "--stream", "--model", str(exp))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
    assert "microphone" in done.stderr and "arecord" in done.stderr
    done = run_cli("decode", "--stream", "--realtime", "--model", str(exp), "-")
    assert done.returncode == 1 and "--realtime paces a file" in done.stderr


def test_silence_ends_a_segment(chunked_exp, tmp_path) -> None:
    exp, _ = chunked_exp
    wav = write_speech_like_wav(tmp_path / "gap.wav", seconds=4.0, seed=5, gap=(1.5, 3.0))
    stream = StreamingRecognizer(Recognizer.load(exp), StreamSettings(endpoint_seconds=1.0)).open()
    samples = load_audio(wav).numpy()
    updates = []
    for i in range(0, samples.size, 800):
        updates += stream.feed(samples[i: i + 800])
    updates.append(stream.finish())
    finals = [u for u in updates if u.kind == "final"]
    assert [u.segment for u in finals] == [0, 1]
    assert 2.4 <= finals[1].times[0][0] if finals[1].tokens else True  # the second segment's times are absolute


def test_stream_resampler_equals_whole_recording_resampling() -> None:
    """A microphone that cannot record at 16 kHz is resampled block by block: the same samples as resampling the
    whole recording (to float rounding)."""
    import torchaudio.functional as AF

    from data_prep.live_audio import StreamResampler

    rng = np.random.default_rng(0)
    for src in (48000, 44100):
        x = (rng.standard_normal(src // 2) * 0.1).astype(np.float32)
        resampler, out, i = StreamResampler(src, 16000), [], 0
        while i < x.size:
            n = int(rng.integers(1, 3000))
            out.append(resampler.push(x[i: i + n]))
            i += n
        out.append(resampler.push(np.zeros(0, np.float32), final=True))
        want = AF.resample(torch.from_numpy(x), src, 16000).numpy()
        np.testing.assert_allclose(np.concatenate(out), want, rtol=0, atol=1e-6)


def test_realtime_file_blocks_arrive_at_the_pace_of_speech(tmp_path) -> None:
    from data_prep.live_audio import file_blocks

    wav = write_speech_like_wav(tmp_path / "short.wav", seconds=0.5)
    start = __import__("time").monotonic()
    blocks = list(file_blocks(wav, 16000, realtime=True))
    assert sum(b.size for b, _ in blocks) == 8000
    assert blocks[-1][1] - start >= 0.45  # the last block is given out when it would have been spoken
