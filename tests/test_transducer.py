"""The RNN transducer head: loss (brute force, padding, memory groups), searches (exhaustive, beam 1 = greedy,
chunked greedy), pretraining from a CTC experiment, and training, decoding, evaluation and export end to end."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import padded_batch, run_cli, same_threads, write_recipe

from lstm_asr.decoding.transducer_search import (
    SequenceTrie,
    beam_search,
    greedy_advance,
    greedy_results,
    greedy_search,
    greedy_start,
)
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.model import BLSTMCTC, ModelConfig
from lstm_asr.nn.transducer import Transducer, joint_groups, pad_targets


def tiny_transducer(seed: int = 0, classes: int = 4, **cfg) -> Transducer:
    torch.manual_seed(seed)
    config = dict(input_dim=7, num_classes=classes, hidden=6, layers=2, head="transducer", pred_hidden=5,
                  joint_dim=8)
    return Transducer(ModelConfig(**{**config, **cfg}))


def grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


PREDICTORS = {"one_hot": {}, "embedding": dict(pred_embedding=3), "stateless": dict(pred_context=2),
              "stateless_1": dict(pred_context=1, pred_embedding=3)}


@pytest.mark.parametrize("predictor", list(PREDICTORS))
def test_padded_batch_gives_each_utterance_its_loss_and_gradients(predictor: str) -> None:
    model = tiny_transducer(**PREDICTORS[predictor], stack_frames=2, subsample=2).double()
    x, lengths = padded_batch(7)  # garbage in the padding
    targets, tlens, offsets = torch.tensor([1, 2, 3, 2, 3, 1, 1, 3]), torch.tensor([3, 2, 3]), [0, 3, 5]
    model.zero_grad()
    loss = model(x, lengths, targets, tlens)
    loss.backward()
    batch = grads(model)
    model.zero_grad()
    alone = 0.0
    for b, n in enumerate(lengths.tolist()):
        t = targets[offsets[b]:offsets[b] + tlens[b]]
        part = model(x[b:b + 1, :n], lengths[b:b + 1], t, tlens[b:b + 1]) / 3
        part.backward()
        alone += part.item()
    assert loss.item() == pytest.approx(alone, rel=1e-6)
    for g, p in zip(batch, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=1e-8)
    # A memory budget too small for two utterances: one group each, recomputed in the backward pass; same result.
    model.joint_budget_mb = 1e-9
    model.zero_grad()
    grouped = model(x, lengths, targets, tlens)
    grouped.backward()
    assert grouped.item() == pytest.approx(loss.item(), rel=1e-6)
    for g, p in zip(batch, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=1e-8)


def test_loss_is_minus_log_of_the_sum_over_every_alignment() -> None:
    model = tiny_transducer(classes=3).double()
    frames, labels = 4, (2, 1, 2)
    x = torch.randn(1, frames, 7, dtype=torch.float64)
    with torch.no_grad():  # the reference: plain numbers, no graph
        enc = model(x, torch.tensor([frames]))[0]
        state = model.initial_state(1)
        preds = []
        for k in (0,) + labels:
            p, state = model.predict(torch.tensor([k]), state)
            preds.append(p[0])
        lp = model.join(enc[:, None], torch.stack(preds)[None])  # (T, U+1, V)
    # An alignment: how many labels are emitted before each frame's closing blank (they sum to U).
    total = []
    for counts in itertools.product(range(len(labels) + 1), repeat=frames):
        if sum(counts) != len(labels):
            continue
        u, score = 0, 0.0
        for t, c in enumerate(counts):
            for _ in range(c):
                score += float(lp[t, u, labels[u]])
                u += 1
            score += float(lp[t, u, 0])
        total.append(score)
    brute = -math.log(sum(math.exp(s) for s in total))
    loss = model(x, torch.tensor([frames]), torch.tensor(labels), torch.tensor([len(labels)]))
    assert float(loss.detach()) == pytest.approx(brute, rel=1e-5)  # the training loss, computed with its graph


def test_joint_groups_fit_the_budget() -> None:
    assert joint_groups([10, 9, 8], [3, 4, 2], 8, 4, budget_mb=1e6) == [(0, 3)]
    groups = joint_groups([10, 9, 8, 20], [3, 4, 2, 9], 8, 4, budget_mb=(10 * 5 * (3 * 8 + 4 * 4) * 4 * 2) / 2**20)
    assert groups == [(0, 2), (2, 3), (3, 4)]  # the last alone exceeds the budget: a group of its own
    assert pad_targets(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3])).tolist() == [[1, 0, 0], [0, 0, 0],
                                                                                         [2, 3, 4]]


def exhaustive_best(model: Transducer, enc: torch.Tensor, max_symbols: int) -> dict[tuple[int, ...], float]:
    """Log probability of every label sequence, summed over every alignment with at most ``max_symbols`` labels
    per frame, by enumerating the alignments one by one."""
    labels = range(1, model.config.num_classes)
    per_frame = [()] + [seq for n in range(1, max_symbols + 1) for seq in itertools.product(labels, repeat=n)]
    probs: dict[tuple[int, ...], float] = {}
    for alignment in itertools.product(per_frame, repeat=enc.shape[0]):
        state = model.initial_state(1)
        pred, state = model.predict(torch.tensor([0]), state)
        seq, score = (), 0.0
        for t, emitted in enumerate(alignment):
            for k in emitted:
                score += float(model.join(enc[t:t + 1], pred)[0, k])
                pred, state = model.predict(torch.tensor([k]), state)
                seq += (k,)
            score += float(model.join(enc[t:t + 1], pred)[0, 0])
        probs[seq] = float(np.logaddexp(probs.get(seq, -np.inf), score))
    return probs


@pytest.mark.parametrize("seed,predictor", [(0, "one_hot"), (1, "one_hot"), (2, "one_hot"), (0, "stateless"),
                                            (1, "stateless_1")])
def test_beam_search_finds_what_exhaustive_search_finds(seed: int, predictor: str) -> None:
    model = tiny_transducer(seed, classes=3, **PREDICTORS[predictor]).double().eval()
    x = 3 * torch.randn(1, 3, 7, dtype=torch.float64)
    with torch.no_grad():
        enc = model(x, torch.tensor([3]))[0]
        probs = exhaustive_best(model, enc, max_symbols=2)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    found = beam_search(model, enc, beam=10_000, nbest=3, max_symbols=2)
    assert [r.tokens for r in found] == [seq for seq, _ in ranked]
    for r, (_, score) in zip(found, ranked, strict=True):
        assert r.score == pytest.approx(score, abs=1e-9)
        assert len(r.frames) == len(r.tokens) and list(r.frames) == sorted(r.frames)
        if 1 <= len(r.tokens) <= 2:  # the cap of 2 labels per frame cannot bind: the score is the model's own
            with torch.no_grad():  # log probability of the sequence, minus the training loss
                loss = model(x, torch.tensor([3]), torch.tensor(r.tokens), torch.tensor([len(r.tokens)]))
            assert r.score == pytest.approx(-float(loss), rel=1e-6)  # rnnt_loss runs in float32


@pytest.mark.parametrize("seed,predictor", [(s, "one_hot") for s in range(4)] + [(0, "stateless"), (1, "stateless")])
def test_beam_one_is_greedy_and_greedy_is_the_same_in_a_batch_and_in_chunks(seed: int, predictor: str) -> None:
    # float64: alone, in a batch and in the beam search the prediction and joint networks multiply matrices of other
    # shapes, which round differently (by CPU and kernel); the random model's best labels are not kept apart by
    # margins, so in float32 a rounding could pick another label. In float64 the roundings are ~1e-16.
    model = tiny_transducer(seed, classes=6, hidden=8, pred_hidden=8, **PREDICTORS[predictor]).double().eval()
    x, lengths = 2 * torch.randn(3, 20, 7, dtype=torch.float64), torch.tensor([20, 13, 7])
    with torch.no_grad():
        enc = model(x, lengths)
    whole = greedy_search(model, enc, lengths)
    state = greedy_start(model, 3)
    for start in range(0, 20, 6):  # encoder frames arriving in chunks of 6
        state = greedy_advance(model, state, enc[:, start:start + 6], (lengths - start).clamp(0, 6))
    assert greedy_results(state) == whole
    for b, n in enumerate(lengths.tolist()):
        alone = greedy_search(model, enc[b:b + 1, :n], lengths[b:b + 1])[0]
        assert alone.tokens == whole[b].tokens and alone.frames == whole[b].frames
        assert alone.score == pytest.approx(whole[b].score, abs=1e-9)
        one = beam_search(model, enc[b, :n], beam=1)[0]
        assert (one.tokens, one.frames) == (whole[b].tokens, whole[b].frames)
        assert one.score == pytest.approx(whole[b].score, abs=1e-9)


def test_sequence_trie_gives_equal_sequences_equal_ids() -> None:
    trie = SequenceTrie(5)
    a = trie.child(np.array([0, 0, 0]), np.array([1, 2, 1]))
    assert a[0] == a[2] and a[0] != a[1]
    b = trie.child(np.array([a[0], a[1], a[0]]), np.array([3, 3, 3]))
    assert b[0] == b[2] and trie.sequence(int(b[1])) == (2, 3) and trie.sequence(int(b[0])) == (1, 3)


def test_ctc_model_keeps_its_parameter_names_and_old_checkpoints_resume() -> None:
    from lstm_asr.training.resume import model_differences

    ctc = BLSTMCTC(ModelConfig(input_dim=7, num_classes=4, hidden=6, layers=2))
    assert {k.split(".")[0] for k in ctc.state_dict()} == {"normalizer", "layers", "output"}
    transducer = tiny_transducer()
    assert set(ctc.encoder_state_dict()) == set(transducer.encoder_state_dict())
    old = {k: v for k, v in vars(ctc.config).items() if k not in ("head", "pred_hidden", "pred_layers",
                                                                   "pred_embedding", "joint_dim")}
    assert model_differences(old, vars(ctc.config)) == []
    assert model_differences(old, vars(transducer.config))  # a transducer is another model
    # 3x250 with Graves 2013's prediction (250) and joint (250) networks: 4.3M weights, as the paper quotes.
    big = Transducer(ModelConfig(input_dim=123, num_classes=62, head="transducer"))
    assert 4.2e6 < big.num_parameters() < 4.4e6


# ---- end to end on the tiny generated corpus (the conftest's CTC experiment is the encoder's source) ----


def transducer_recipe(work: Path, corpus: Path, ctc_exp: Path) -> Path:
    return write_recipe(work / "rnnt.yaml", corpus, ctc_exp.parent / "feats",
                        corpus={"dev_split": "train", "test_split": "train"},
                        model={"head": "transducer", "pred_hidden": 16, "joint_dim": 16},
                        training={"max_epochs": 3, "init_encoder_from": str(ctc_exp), "pretrain_prediction": True,
                                  "prediction_lm_epochs": 2, "optimizer": "adam", "lr": 0.003},
                        decoding={"max_symbols": 3})


@pytest.fixture(scope="module")
def transducer_exp(tmp_path_factory, tiny_corpus: Path, trained_exp: Path) -> Path:
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    work = tmp_path_factory.mktemp("rnnt")
    train(load_recipe(transducer_recipe(work, tiny_corpus, trained_exp)), work / "exp", show_progress=False)
    return work / "exp"


def test_pretrained_transducer_records_its_pretraining_and_resumes_exactly(
        transducer_exp: Path, trained_exp: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch) -> None:
    import lstm_asr.training.train as train_module
    from lstm_asr.recipe import load_recipe

    results = json.loads((transducer_exp / "results.json").read_text())
    assert results["head"] == "transducer"
    pre = results["pretraining"]
    assert pre["encoder"]["from"] == str(trained_exp / "best.pt")
    assert pre["prediction_lm"]["epochs"] == 2 and len(pre["prediction_lm"]["dev_ppl_per_epoch"]) == 2
    metrics = [json.loads(line) for line in (transducer_exp / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics if m["kind"] == "prediction_lm"] == [1, 2]
    assert [m["epoch"] for m in metrics if m["kind"] == "epoch"] == [1, 2, 3]
    # The same run, stopped at its first batch (right after the pretraining), then resumed: no pretraining again,
    # and the very weights of the uninterrupted run.
    recipe = load_recipe(transducer_recipe(tmp_path, tiny_corpus, trained_exp))

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "batch_loss", stop)
    with pytest.raises(KeyboardInterrupt):
        train_module.train(recipe, tmp_path / "exp", show_progress=False)
    monkeypatch.undo()
    lm_lines = (tmp_path / "exp" / "metrics.jsonl").read_text().count('"prediction_lm"')
    assert lm_lines == 2
    resumed = train_module.train(recipe, tmp_path / "exp", show_progress=False, resume=True)
    assert (tmp_path / "exp" / "metrics.jsonl").read_text().count('"prediction_lm"') == lm_lines
    assert resumed["pretraining"] == pre
    a = torch.load(transducer_exp / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "exp" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_transducer_decodes_evaluates_and_exports(transducer_exp: Path, tiny_corpus: Path, tmp_path: Path) -> None:
    from data_prep.audio import load_audio
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.recognition.recognizer import Recognizer

    wav = sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0]
    rec = Recognizer.load(transducer_exp)
    wave = load_audio(wav, 16000)
    enc = rec.log_probs(wave)
    # The CLI gives what the library's search gives on the model's encoder frames (recipe: max_symbols 3).
    best = rec.searcher(SearchConfig(beam=4, nbest=2, max_symbols=3))(enc[None], torch.tensor([len(enc)]))[0]
    res = run_cli("decode", "--model", str(transducer_exp), "--beam", "4", "--nbest", "2", "--json", *same_threads(),
                  str(wav))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["text"].split() == [rec.tokens[i] for i in best[0].tokens]
    assert [t["start"] for t in out["tokens"]] == [round(f * rec.frame_seconds, 3) for f in best[0].frames]
    assert len(out["nbest"]) == len(best) and out["nbest"][0]["score"] == round(best[0].score, 4)
    assert "transducer time-synchronous beam search, beam 4" in res.stderr
    ev = run_cli("evaluate", str(transducer_exp), "--split", "dev", "--beam", "4")
    assert ev.returncode == 0 and "transducer time-synchronous beam search, beam 4" in ev.stdout, ev.stderr
    assert (transducer_exp / "decode_dev_beam4" / "hyp.txt").is_file()
    # The export: waveform in, greedy token ids out; its methods drive the project's beam search.
    model_pt = tmp_path / "rnnt.pt"
    res = run_cli("export", str(transducer_exp), "-o", str(model_pt))
    assert res.returncode == 0, res.stderr
    scripted = torch.jit.load(str(model_pt))
    scripted_enc = scripted.encode(wave)
    torch.testing.assert_close(scripted_enc, enc, atol=1e-5, rtol=0)
    assert not scripted_enc.requires_grad  # inference-only: no autograd graph without torch.no_grad()
    # The searches below are compared on the exported encoder's own frames: its encoder computes in another order
    # (close to 1e-5, above), and a trained model's best labels may be closer than that to each other.
    greedy = rec.searcher(SearchConfig(beam=1, max_symbols=4))(scripted_enc[None], torch.tensor([len(enc)]))[0][0]
    assert tuple(scripted(wave).tolist()) == greedy.tokens
    res = run_cli("decode", "--model", str(model_pt), "--beam", "4", "--json", *same_threads(), str(wav))
    assert res.returncode == 0, res.stderr
    beam4 = rec.searcher(SearchConfig(beam=4, max_symbols=4))(scripted_enc[None], torch.tensor([len(enc)]))[0][0]
    assert json.loads(res.stdout.strip().splitlines()[-1])["text"].split() == [rec.tokens[i] for i in beam4.tokens]


def test_encoder_copy_and_bad_input_are_one_line_errors(transducer_exp: Path, trained_exp: Path, tiny_corpus: Path,
                                          tmp_path: Path) -> None:
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.export.transducer_torchscript import export_transducer
    from lstm_asr.recognition.recognizer import Recognizer
    from lstm_asr.training.pretraining import init_encoder_from, read_lm_text

    wav = str(sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0])
    res = run_cli("align", "--model", str(transducer_exp), wav, "h# sh")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "best.pt: a transducer model (model.head: transducer); forced alignment" in res.stderr
    rec = Recognizer.load(transducer_exp)
    with pytest.raises(LstmAsrError, match=r"best.pt: a transducer model: LM fusion .*decoding.lm"):
        rec.searcher(SearchConfig(lm=str(tmp_path / "x.arpa")))
    with pytest.raises(LstmAsrError, match=r"a transducer model exports as --format torchscript, or .*sherpa-onnx"):
        export_transducer(transducer_exp, tmp_path / "m.onnx", "onnx")
    model = tiny_transducer(input_dim=123, hidden=48, layers=2)  # the CTC experiment's encoder shape
    ctc = torch.load(trained_exp / "best.pt", weights_only=True)
    feats = ctc["features"]
    done = init_encoder_from(model, str(trained_exp), feats)
    assert done["from"] == str(trained_exp / "best.pt")
    copied = model.encoder_state_dict()
    assert copied and all(torch.equal(v, ctc["state_dict"][k]) for k, v in copied.items())
    with pytest.raises(LstmAsrError, match=r"best.pt: a transducer model, not a CTC one .*init_encoder_from"):
        init_encoder_from(model, str(transducer_exp), feats)
    with pytest.raises(LstmAsrError, match=r"no trained CTC experiment there .*init_encoder_from"):
        init_encoder_from(model, str(tmp_path / "nothing"), feats)
    with pytest.raises(LstmAsrError, match=r"best.pt: its encoder \(2x48 lstm\) does not fit this model's \(3x48"):
        init_encoder_from(tiny_transducer(input_dim=123, hidden=48, layers=3), str(trained_exp), feats)
    with pytest.raises(LstmAsrError, match=r"other features .*num_mel_bins.*init_encoder_from"):
        init_encoder_from(model, str(trained_exp), {**feats, "num_mel_bins": 23})
    text = tmp_path / "lm.txt"
    text.write_text("h# sh iy h#\nh# zz h#\n")
    with pytest.raises(LstmAsrError, match=r"lm.txt:2: 'zz' is not one of the model's .*prediction_lm_text"):
        read_lm_text(str(text), ["<blank>", "h#", "sh", "iy"])


def test_windowed_decoding_stitches_encoder_frames(tiny_corpus: Path, tmp_path: Path) -> None:
    from test_long_decode import WINDOW, fading_memory_model, long_recording

    from data_prep.audio import load_audio
    from data_prep.phones import TRAIN_PHONES
    from lstm_asr.data.features import FeatureConfig, compute_features
    from lstm_asr.data.tokens import TokenSet
    from lstm_asr.decoding.search import SearchConfig
    from lstm_asr.nn.checkpoint import save_checkpoint
    from lstm_asr.recipe import load_recipe
    from lstm_asr.recognition.long_decode import windowed_log_probs
    from lstm_asr.recognition.recognizer import Recognizer
    from lstm_asr.training.train import model_checkpoint

    wav = long_recording(tiny_corpus, tmp_path / "long.wav", seconds=9.0)
    tokens = TokenSet(list(TRAIN_PHONES)).symbols
    feats = compute_features(load_audio(wav, 16000), FeatureConfig())
    # An encoder whose outputs provably depend on nearby frames only (test_long_decode.py), under a transducer.
    ctc = fading_memory_model(feats, num_classes=len(tokens), stack_frames=3, subsample=3)
    model = Transducer(ModelConfig(**{**vars(ctc.config), "head": "transducer", "pred_hidden": 8,
                                      "joint_dim": 8})).eval()
    model.load_state_dict(ctc.encoder_state_dict(), strict=False)
    with torch.no_grad():
        whole = model(feats[None], torch.tensor([len(feats)]))[0]
    windowed, _ = windowed_log_probs(model, FeatureConfig(), wav, WINDOW)
    assert windowed.shape == whole.shape
    torch.testing.assert_close(windowed, whole, atol=1e-5, rtol=0)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats",
                                      model={"head": "transducer"}))
    save_checkpoint(model_checkpoint(model, recipe, tokens), tmp_path / "exp" / "best.pt")
    res = run_cli("decode", "--model", str(tmp_path / "exp"), "--json", *same_threads(), "--window-seconds", "2",
                  "--context-seconds", "1", str(wav))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    best = Recognizer.load(tmp_path / "exp").searcher(SearchConfig())(windowed[None], torch.tensor([len(windowed)]))
    assert out["text"].split() == [tokens[i] for i in best[0][0].tokens] and out["duration"] == 9.0
