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
from lstm_asr.nn import kernel_support, quantize
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.nn.kernel_support import autocast_problem
from lstm_asr.nn.model import BLSTMCTC, ModelConfig, ctc_loss
from lstm_asr.recipe import load_recipe
from lstm_asr.training.devices import MixedPrecision, select_device

CPU = torch.device("cpu")
ONEDNN_FAILURE = ("could not create a primitive descriptor for the LSTM forward propagation primitive. Run workload "
                  "with environment variable ONEDNN_VERBOSE=all to get additional diagnostic information.")


def tiny_model(cell: str) -> BLSTMCTC:
    return BLSTMCTC(ModelConfig(input_dim=6, num_classes=4, hidden=8, layers=2, cell=cell, freq_bins=3,
                                conv_channels=2, conv_kernel=3, lmu_order=4, lmu_theta=4.0, lmu_memories=2))


def skip_without_bf16(cell: str) -> None:
    """Skip where this CPU cannot run ``cell`` in bf16 (no AVX-512 BF16/AMX: oneDNN has no bf16 LSTM primitive);
    the one-line error the user gets there is tested below with the probe forced to fail."""
    problem = autocast_problem(tiny_model(cell), "bf16", CPU)
    if problem is not None:
        pytest.skip(f"this CPU does not run the {cell} cell in bf16: {problem}")


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
    skip_without_bf16("lstm")
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
    skip_without_bf16(cell)
    torch.manual_seed(0)
    model = tiny_model(cell)
    x, lengths = torch.randn(2, 9, 6), torch.tensor([9, 6])
    ref = model(x, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, lengths)
        loss = ctc_loss(out, lengths, torch.tensor([1, 2, 3]), torch.tensor([2, 1]))
    loss.backward()
    assert out.dtype == loss.dtype == torch.float32  # float32 log-softmax and CTC whatever autocast does inside
    assert 0 < (out - ref).abs().max() < 0.05  # really computed in bf16, and close to float32
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)


def test_bf16_on_a_cpu_without_its_kernels_is_a_one_line_error(tiny_corpus: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Where oneDNN has no bf16 LSTM (an AVX2-only CPU), training stops before its first step with one line that
    says why and what to use, not a traceback from inside nn.LSTM. The probe is forced to fail as it does there."""

    def no_bf16_lstm(model, device, dtype):  # type: ignore[no-untyped-def]
        assert dtype == torch.bfloat16 and device == CPU
        raise RuntimeError(ONEDNN_FAILURE)

    monkeypatch.setattr(kernel_support, "run_autocast_probe", no_bf16_lstm)
    steps: list[int] = []
    monkeypatch.setattr(torch.nn.functional, "ctc_loss", lambda *a, **k: steps.append(1))
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats",
                                      model={"hidden": 8, "layers": 1},
                                      training={"max_epochs": 1, "precision": "bf16", "threads": 1}))
    with pytest.raises(LstmAsrError) as err:
        train_module.train(recipe, tmp_path / "exp", show_progress=False)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("training.precision: bf16 does not run on this CPU for the lstm cell")
    assert "could not create a primitive descriptor" in message and message.endswith("use training.precision=fp32")
    assert steps == [] and not (tmp_path / "exp" / "last.pt").exists()  # stopped before any training step
    # fp32 runs no probe at all: nothing to check.
    assert autocast_problem(tiny_model("lstm"), "fp32", CPU) is None


def test_the_probe_runs_the_real_model_and_leaves_it_untouched() -> None:
    """The probe is one forward and backward of a copy: the model's weights and gradients are unchanged."""
    model = tiny_model("lstm")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls: list[torch.dtype] = []
    real_encode = BLSTMCTC.encode

    def encode(self, x, lengths):  # type: ignore[no-untyped-def]
        calls.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
        return real_encode(self, x, lengths)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BLSTMCTC, "encode", encode)
        kernel_support.autocast_problem(model, "bf16", CPU)
    assert calls == [torch.bfloat16]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_int8_on_a_cpu_without_a_quantized_engine_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine() -> None:
        raise RuntimeError("Didn't find engine for operation quantized::linear_prepack NoQEngine\nmore detail")

    monkeypatch.setattr(kernel_support, "run_int8_probe", no_engine)
    kernel_support.int8_problem.cache_clear()
    try:
        with pytest.raises(LstmAsrError, match=r"^--quantize int8 does not run on this CPU \(.*NoQEngine\)"
                                               r"; decode in float32 \(leave --quantize out\)$"):
            quantize.quantized(tiny_model("lstm"), "int8")
    finally:
        kernel_support.int8_problem.cache_clear()
