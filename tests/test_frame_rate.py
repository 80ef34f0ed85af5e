"""Frame-rate reduction: stacking + subsampling, pyramid, output lengths, CTC feasibility, training and token times."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, write_recipe

from lstm_asr.data.ctc_feasibility import ctc_feasible, ctc_min_frames, ctc_min_frames_all
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.errors import RecipeError
from lstm_asr.nn.frame_rate import stack_frames
from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.recipe import recipe_from_dict


@pytest.mark.parametrize(("stack", "subsample"), [(3, 3), (4, 2), (2, 3), (1, 2)])
def test_stack_frames_matches_the_definition(stack: int, subsample: int) -> None:
    x = torch.randn(2, 10, 3)
    lengths = torch.tensor([10, 7])
    out, out_len = stack_frames(x, lengths, stack, subsample)
    for b, n in enumerate(lengths.tolist()):
        assert out_len[b] == -(-n // subsample)
        for k in range(int(out_len[b])):
            want = [x[b, k * subsample + j] if k * subsample + j < n else torch.zeros(3) for j in range(stack)]
            torch.testing.assert_close(out[b, k], torch.cat(want))


@pytest.mark.parametrize("options", [dict(stack_frames=3, subsample=3), dict(pyramid=2),
                                     dict(stack_frames=2, subsample=2, pyramid=1, cell="peephole")])
def test_reduced_model_is_padding_safe_and_reports_output_lengths(options: dict) -> None:
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=4, num_classes=5, hidden=5, layers=3, **options)).double()
    lengths = torch.tensor([17, 8, 11])  # odd lengths: a last window that runs into the padding
    x = torch.randn(3, 17, 4, dtype=torch.float64)
    x[1, 8:] = 1e3
    x[2, 11:] = -1e3
    out = model(x, lengths)
    out_len = model.output_lengths(lengths)
    assert out.shape[1] == int(out_len.max()) < 17
    assert model.frame_reduction == options.get("subsample", 1) * 2 ** options.get("pyramid", 0)
    for b, n in enumerate(lengths.tolist()):
        alone = model(x[b : b + 1, :n], lengths[b : b + 1])
        assert alone.shape[1] == int(out_len[b])
        torch.testing.assert_close(out[b, : out_len[b]], alone[0], rtol=0, atol=1e-12)
    # The CTC loss over the reduced lengths is finite and gives gradients.
    loss = ctc_loss(out, out_len, torch.tensor([1, 2, 3, 1, 2]), torch.tensor([2, 1, 2]))
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_ctc_feasibility_for_a_whole_split_at_the_reduced_rate() -> None:
    rng = np.random.default_rng(0)
    utts = [rng.integers(1, 4, size=int(rng.integers(1, 12))) for _ in range(50)]
    flat, counts = np.concatenate(utts), np.array([len(u) for u in utts])
    assert ctc_min_frames_all(flat, counts).tolist() == [ctc_min_frames(u.tolist()) for u in utts]
    frames = rng.integers(5, 60, size=50)
    model = BLSTMCTC(ModelConfig(input_dim=3, num_classes=4, hidden=4, layers=2, stack_frames=3, subsample=3))
    mask = ctc_feasible(frames, flat, counts, model.output_lengths)
    want = [-(-f // 3) >= ctc_min_frames(u.tolist()) for f, u in zip(frames, utts, strict=True)]
    assert mask.tolist() == want and 0 < mask.sum() < 50


def test_bad_frame_rate_options_are_one_line_errors() -> None:
    base = {"corpus": {"path": "x"}}
    with pytest.raises(RecipeError, match=r"model.pyramid: must be below model.layers \(3\)"):
        recipe_from_dict({**base, "model": {"pyramid": 3}}, "r.yaml")
    with pytest.raises(RecipeError, match=r"model.subsample: must be > 0"):
        recipe_from_dict({**base, "model": {"subsample": 0}}, "r.yaml")


def test_training_at_a_reduced_rate_skips_infeasible_utterances_and_scales_token_times(
        tmp_path: Path, tiny_corpus: Path) -> None:
    store = tmp_path / "feats"
    # First a plain prep, to pick a subsampling factor that leaves some, but not all, utterances feasible.
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, store, corpus={"dev_split": "train", "test_split": "train"},
                          training={"max_epochs": 2})
    assert run_cli("prep", str(recipe)).returncode == 0
    train = FeatureSplit(store / "train")
    need = ctc_min_frames_all(train.all_labels(), train.num_labels)
    infeasible = {f: int((-(-train.num_frames // f) < need).sum()) for f in range(2, 40)}
    factor = next(f for f, n in infeasible.items() if 0 < n < len(train))
    skipped = infeasible[factor]
    exp = tmp_path / "exp"
    r = run_cli("train", str(recipe), "--out", str(exp), "--set", f"model.stack_frames={factor}",
                "--set", f"model.subsample={factor}")
    assert r.returncode == 0, r.stderr
    assert f"skipped {skipped} of {len(train)} training utterances: CTC-infeasible at 1/{factor}" in r.stdout
    ckpt = torch.load(exp / "best.pt", weights_only=True)
    assert ckpt["model_config"]["subsample"] == factor
    # Token times are in seconds of audio: output frames x 10 ms x the reduction, so they reach the end.
    wav = sorted(tiny_corpus.glob("TRAIN/*/*/SX*.WAV"))[0]
    d = run_cli("decode", str(wav), "--model", str(exp), "--json")
    assert d.returncode == 0, d.stderr
    tokens = json.loads(d.stdout.splitlines()[0])["tokens"]
    duration = json.loads(d.stdout.splitlines()[0])["duration"]
    if tokens:  # after 2 epochs the model may emit nothing; the time scale shows in the last token's end
        assert duration - 0.1 * factor <= tokens[-1]["end"] <= duration + 0.05 * factor
    # Infeasible for every utterance: a one-line error, no traceback.
    bad = run_cli("train", str(recipe), "--out", str(tmp_path / "bad"), "--set", "model.subsample=1000")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    assert "no training utterance keeps enough frames for CTC at 1/1000" in bad.stderr
