"""Training device and precision: device selection, checked choices, bf16 autocast with a float32 CTC loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import write_recipe

import lstm_asr.training.train as train_module
from lstm_asr.errors import LstmAsrError, RecipeError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.recipe import load_recipe
from lstm_asr.training.devices import MixedPrecision, select_device


def test_device_selection() -> None:
    assert select_device("auto", gpus=0) == torch.device("cpu")
    assert select_device("auto", 0, gpus=2) == torch.device("cuda", 0)
    assert select_device("auto", 1, gpus=2) == torch.device("cuda", 1)  # torchrun: the GPU of LOCAL_RANK
    assert select_device("cpu", 1, gpus=2) == torch.device("cpu")
    assert select_device("cuda", 1, gpus=4) == torch.device("cuda", 1)
    with pytest.raises(LstmAsrError, match="no usable GPU"):
        select_device("cuda", gpus=0)
    with pytest.raises(LstmAsrError, match="at most 2 processes per node"):
        select_device("cuda", 2, gpus=2)
    with pytest.raises(LstmAsrError, match="not one of"):
        select_device("tpu", gpus=0)
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert select_device("auto") == expected


def test_precision_choices_are_checked(tmp_path: Path, tiny_corpus: Path) -> None:
    with pytest.raises(LstmAsrError, match="fp16 needs a CUDA device"):
        MixedPrecision("fp16", torch.device("cpu"))
    with pytest.raises(LstmAsrError, match="not one of"):
        MixedPrecision("fp8", torch.device("cpu"))
    path = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats")
    with pytest.raises(RecipeError, match="training.precision.*fp16 needs"):
        load_recipe(path, ["training.device=cpu", "training.precision=fp16"])
    with pytest.raises(RecipeError, match="training.precision.*not one of"):
        load_recipe(path, ["training.precision=fp8"])
    with pytest.raises(RecipeError, match="training.device.*not one of"):
        load_recipe(path, ["training.device=gpu"])
    assert load_recipe(path).training.device == "auto" and load_recipe(path).training.precision == "fp32"


def test_bf16_autocast_on_cpu_trains_with_float32_ctc(tiny_corpus: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, list] = {"layer_out": [], "ctc_in": [], "autocast": []}
    real_build, real_ctc = train_module.build_model, torch.nn.functional.ctc_loss

    def build(*args, **kwargs):  # type: ignore[no-untyped-def]
        model = real_build(*args, **kwargs)
        model.output.register_forward_hook(lambda m, i, o: seen["layer_out"].append(o.dtype) if m.training else None)
        return model

    def ctc(log_probs, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["ctc_in"].append(log_probs.dtype)
        seen["autocast"].append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return real_ctc(log_probs, *args, **kwargs)

    monkeypatch.setattr(train_module, "build_model", build)
    monkeypatch.setattr(torch.nn.functional, "ctc_loss", ctc)
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats",
                                      model={"hidden": 16, "layers": 2},
                                      training={"max_epochs": 2, "precision": "bf16", "threads": 1}))
    results = train_module.train(recipe, tmp_path / "exp", show_progress=False)
    steps = len(seen["ctc_in"])
    assert steps >= 8 and len(seen["layer_out"]) == steps
    assert set(seen["layer_out"]) == {torch.bfloat16}  # the network really ran in bf16 ...
    assert set(seen["autocast"]) == {torch.bfloat16}  # ... the loss was computed inside autocast ...
    assert set(seen["ctc_in"]) == {torch.float32}  # ... and the CTC recursions still got float32
    weights = load_checkpoint(tmp_path / "exp" / "last.pt")["state_dict"]
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    epochs = [json.loads(x) for x in (tmp_path / "exp" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["train_loss"] for e in epochs if e["kind"] == "epoch"]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses) and results["skipped_steps"] == 0


@pytest.mark.parametrize("cell", ["lstm", "gru", "peephole", "fgr", "cifg", "convlstm", "lmu"])
def test_every_cell_runs_under_bf16_autocast(cell: str) -> None:
    torch.manual_seed(0)
    model = BLSTMCTC(ModelConfig(input_dim=6, num_classes=4, hidden=8, layers=2, cell=cell, freq_bins=3,
                                 conv_channels=2, conv_kernel=3, lmu_order=4, lmu_theta=4.0, lmu_memories=2))
    x, lengths = torch.randn(2, 9, 6), torch.tensor([9, 6])
    ref = model(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, lengths)
        loss = ctc_loss(out, lengths, torch.tensor([1, 2, 3]), torch.tensor([2, 1]))
    loss.backward()
    assert out.dtype == loss.dtype == torch.float32  # float32 log-softmax and CTC whatever autocast does inside
    assert 0 < (out - ref).abs().max() < 0.05  # really computed in bf16, and close to float32
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
