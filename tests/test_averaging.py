"""Checkpoint averaging: the mean itself, which epochs are kept and chosen, training.average_last end to end, the
``average`` command and ``evaluate`` scoring averaged.pt beside best.pt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_cli, write_recipe

from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.recipe import load_recipe
from lstm_asr.training.averaging import (
    average_experiment,
    average_state_dicts,
    epoch_path,
    keep_epoch,
    read_index,
    select_epochs,
)
from lstm_asr.training.train import train


def test_average_is_the_elementwise_mean_and_keeps_integer_tensors() -> None:
    states = [{"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}, {"w": torch.tensor([3.0, 6.0]),
                                                                      "n": torch.tensor(5)}]
    avg = average_state_dicts(states)
    assert torch.equal(avg["w"], torch.tensor([2.0, 4.0])) and avg["n"] == 5
    with pytest.raises(LstmAsrError):
        average_state_dicts([{"a": torch.zeros(1)}, {"b": torch.zeros(1)}])


def test_selection_and_pruning_keep_what_an_average_can_still_use(tmp_path: Path) -> None:
    devs = {1: 0.9, 2: 0.5, 3: 0.7, 4: 0.4, 5: 0.8, 6: 0.6}
    for epoch, dev in devs.items():
        keep_epoch(tmp_path, {"state_dict": {"w": torch.full((2,), float(epoch))}}, epoch, dev, 2)
    assert select_epochs(devs, 2, "last") == [5, 6]
    assert select_epochs(devs, 2, "best") == [2, 4]
    kept = read_index(tmp_path)
    assert sorted(kept) == [2, 4, 5, 6]  # the last 2 and the best 2: nothing else stays on disk
    assert sorted(p.name for p in (tmp_path / "epochs").glob("*.pt")) == [epoch_path(tmp_path, e).name
                                                                          for e in (2, 4, 5, 6)]
    for by, mean in (("last", 5.5), ("best", 3.0)):
        path, epochs = average_experiment(tmp_path, 2, by)
        assert torch.equal(load_checkpoint(path)["state_dict"]["w"], torch.full((2,), mean))
    with pytest.raises(LstmAsrError, match="no per-epoch checkpoints"):
        average_experiment(tmp_path / "nothing", 2)


def test_average_last_trains_averages_and_evaluate_scores_both(tiny_corpus: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "avg.yaml", tiny_corpus, tmp_path / "feats", model={"hidden": 16, "layers": 2},
                          training={"max_epochs": 4, "average_last": 3, "threads": 1})
    exp = tmp_path / "exp"
    results = train(load_recipe(recipe), exp, show_progress=False)
    assert results["averaged"]["epochs"] == [2, 3, 4]
    kept = {e: load_checkpoint(epoch_path(exp, e))["state_dict"] for e in (2, 3, 4)}
    averaged = load_checkpoint(exp / "averaged.pt")
    w = next(k for k, v in averaged["state_dict"].items() if v.is_floating_point() and "normalizer" not in k)
    torch.testing.assert_close(averaged["state_dict"][w], sum(s[w] for s in kept.values()) / 3, rtol=0,
                               atol=1e-6)
    assert json.loads((exp / "decode_test_averaged" / "scores.json").read_text())["model"] == "averaged.pt"
    done = run_cli("average", str(exp), "--last", "2", "--by", "best")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and len(load_checkpoint(exp / "averaged.pt")["averaged_epochs"]) == 2
    done = run_cli("evaluate", str(exp), "--split", "dev")
    assert done.returncode == 0, done.stderr
    assert "dev (best.pt)" in done.stdout and "dev (averaged.pt)" in done.stdout
    for folder in ("decode_dev", "decode_dev_averaged"):
        for name in ("confusion.png", "confusion.svg", "confusion.tsv", "classes.json", "report.html"):
            assert (exp / folder / name).is_file()
    bad = run_cli("average", str(tmp_path), "--last", "2")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "no per-epoch checkpoints" in bad.stderr
