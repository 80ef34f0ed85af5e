"""Exact resume and crash safety: SIGKILLed runs resume to bit-identical weights; numerical faults; bad resumes."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_recipe

import lstm_asr.training.train as train_module
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.recipe import load_recipe

# Dropout, SGD momentum, newbob and SpecAugment masks all draw from or carry state that a resume must restore.
TRAINING = {"max_epochs": 4, "checkpoint_every": 1, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
            "schedule": "newbob", "spec_time_masks": 1, "spec_freq_masks": 1}


_STORE: list[Path] = []  # one feature store for the whole module: prep once


@pytest.fixture(autouse=True)
def _shared_store(tmp_path_factory: pytest.TempPathFactory) -> None:
    if not _STORE:
        _STORE.append(tmp_path_factory.mktemp("resume_feats"))


def _recipe(tmp: Path, corpus: Path, name: str, **training: object) -> Path:
    return write_recipe(tmp / f"{name}.yaml", corpus, _STORE[0], model={"hidden": 16, "layers": 2,
                        "dropout": 0.2}, training={**TRAINING, **training})


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = load_checkpoint(a)["state_dict"], load_checkpoint(b)["state_dict"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _train_cmd(recipe: Path, exp: Path) -> list[str]:
    return [sys.executable, "-m", "lstm_asr", "train", str(recipe), "--out", str(exp), "--resume"]


def test_sigkilled_runs_resume_to_identical_weights(tiny_corpus: Path, tmp_path: Path) -> None:
    # Long enough (100 steps, a checkpoint after each) that three kills land before the end on a fast machine.
    recipe = _recipe(tmp_path, tiny_corpus, "r", max_epochs=25)
    ref = run_cli("train", str(recipe), "--out", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    exp = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for _ in range(3):  # kill at a random moment after a (new) checkpoint exists, three times in a row
        before = (exp / "last.pt").stat().st_mtime_ns if (exp / "last.pt").exists() else 0
        proc = subprocess.Popen(_train_cmd(recipe, exp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (exp / "last.pt").exists() and (exp / "last.pt").stat().st_mtime_ns != before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.2))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        loop = load_checkpoint(exp / "last.pt")["loop"]  # always loadable
        assert not loop["done"], "the run finished before it could be killed: make it longer"
    assert kills == 3
    final = subprocess.run(_train_cmd(recipe, exp), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "resuming from" in final.stdout
    assert _same_weights(tmp_path / "ref" / "last.pt", exp / "last.pt")
    assert _same_weights(tmp_path / "ref" / "best.pt", exp / "best.pt")


def test_resume_refuses_changed_recipe_and_other_model(tiny_corpus: Path, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_corpus, "r", max_epochs=1)
    exp = tmp_path / "exp"
    assert run_cli("train", str(recipe), "--out", str(exp)).returncode == 0
    changed = run_cli("train", str(recipe), "--out", str(exp), "--resume", "--set", "training.lr=0.5")
    assert changed.returncode == 1 and changed.stderr.count("\n") == 1
    assert "training.lr" in changed.stderr and "--force" in changed.stderr
    forced = run_cli("train", str(recipe), "--out", str(exp), "--resume", "--force", "--set", "training.lr=0.5",
                     "--set", "training.max_epochs=2")
    assert forced.returncode == 0, forced.stderr
    other = run_cli("train", str(recipe), "--out", str(exp), "--resume", "--force", "--set", "model.hidden=8")
    assert other.returncode == 1 and other.stderr.count("\n") == 1
    assert "another model" in other.stderr and "hidden" in other.stderr


def _nan_after(calls: list[int], bad: callable):  # type: ignore[valid-type]
    real = train_module.batch_loss  # the loop's loss (CTC or transducer head)

    def fake(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * math.nan if bad(len(calls)) else loss

    return fake


def test_nonfinite_steps_are_skipped_and_counted(tiny_corpus: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(train_module, "batch_loss", _nan_after(calls, lambda n: n % 3 == 0))
    recipe = load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=3, max_bad_steps=2))
    results = train_module.train(recipe, tmp_path / "exp", show_progress=False)
    assert results["skipped_steps"] == len(calls) // 3 > 0
    weights = load_checkpoint(tmp_path / "exp" / "last.pt")["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_consecutive_nonfinite_steps_stop_with_last_good_checkpoint(tiny_corpus: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(train_module, "batch_loss", _nan_after(calls, lambda n: n > 6))
    recipe = load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=3, max_bad_steps=3))
    with pytest.raises(LstmAsrError, match="3 consecutive steps with a non-finite"):
        train_module.train(recipe, tmp_path / "exp", show_progress=False)
    last = load_checkpoint(tmp_path / "exp" / "last.pt")
    assert all(torch.isfinite(w).all() for w in last["state_dict"].values())
    assert last["loop"]["bad_streak"] < 3  # saved before the streak reached the limit


def test_recipe_differences_ignore_runtime_keys_and_new_keys_left_at_default() -> None:
    from lstm_asr.recipe import Recipe
    from lstm_asr.training.resume import recipe_differences

    old = Recipe().to_dict()
    new = Recipe().to_dict()
    new["training"]["max_minutes"] = 99.0  # a bigger budget for a run that hit its limit: not a change
    new["training"]["threads"] = 1
    assert recipe_differences(old, new) == []
    del old["training"]["schedule"]  # a checkpoint from before the key existed ...
    assert recipe_differences(old, new) == []  # ... and the new recipe leaves it at its default
    new["training"]["schedule"] = "cosine"
    new["training"]["lr"] = 0.5
    assert recipe_differences(old, new) == ["training.lr", "training.schedule"]


def test_checkpoints_from_before_new_model_fields_still_resume() -> None:
    """A model_config written before a ModelConfig field existed (e.g. conv_layers, lmu_order) is the same model
    when the new field is at its default; a real difference is still refused."""
    from dataclasses import asdict

    from lstm_asr.nn.model import ModelConfig
    from lstm_asr.recipe import Recipe
    from lstm_asr.training.resume import check_resumable

    config = asdict(ModelConfig(input_dim=5, num_classes=4, cell="peephole"))
    old = {k: v for k, v in config.items() if not k.startswith(("conv_", "lmu_", "freq_"))}
    ckpt = {"loop": {}, "optimizer": {}, "model_config": old, "recipe": Recipe().to_dict()}
    check_resumable(ckpt, Recipe().to_dict(), config, "last.pt", force=False)
    with pytest.raises(LstmAsrError, match=r"last.pt: checkpoint is from another model \(differs in lmu_order\)"):
        check_resumable(ckpt, Recipe().to_dict(), {**config, "lmu_order": 8}, "last.pt", force=False)


def test_a_run_stopped_by_its_budget_continues_with_a_bigger_one(tiny_corpus: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """training.max_minutes is a runtime key: resuming a run that ran out of time with epochs left, with more minutes
    (or none), trains on; a run that ended by its last epoch stays finished whatever the budget, even when its time
    ran out in that last epoch."""
    import json

    exp = tmp_path / "exp"

    def epochs(folder: Path = exp) -> list[int]:
        return [r["epoch"] for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())
                if r["kind"] == "epoch"]

    train_module.train(load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=2, max_minutes=1e-6)), exp,
                       show_progress=False)
    assert epochs() == [1]  # out of time after the first batch: the epoch is closed and scored
    assert load_checkpoint(exp / "last.pt")["loop"]["done"]

    train_module.train(load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=2, max_minutes=0)), exp,
                       show_progress=False, resume=True)
    assert "continuing: the run had used its time budget" in capsys.readouterr().out
    assert epochs() == [1, 2]  # trained on to its last epoch
    assert load_checkpoint(exp / "last.pt")["loop"]["done"]

    train_module.train(load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=2, max_minutes=99)), exp,
                       show_progress=False, resume=True)
    assert epochs() == [1, 2] and "continuing" not in capsys.readouterr().out

    # Out of time in its last epoch: nothing is left to train, so a bigger budget does not add an epoch.
    last = tmp_path / "last_epoch"
    train_module.train(load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=1, max_minutes=1e-6)), last,
                       show_progress=False)
    train_module.train(load_recipe(_recipe(tmp_path, tiny_corpus, "r", max_epochs=1, max_minutes=0)), last,
                       show_progress=False, resume=True)
    assert epochs(last) == [1] and "continuing" not in capsys.readouterr().out
