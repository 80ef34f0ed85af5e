"""Data-parallel training: torchrun with 2 CPU processes (gloo) and the distributed sampler."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, write_recipe

from lstm_asr.data.batching import bucket_batches
from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.training.distributed import RANK_WEIGHTS_ENV, shard_batches, torchrun_environment


def _key(batch: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in batch)


def test_shards_are_equal_disjoint_and_cover_the_epoch() -> None:
    lengths = np.random.default_rng(0).integers(50, 400, size=61)
    batches = bucket_batches(lengths, max_frames=1200, max_batch=8, seed=3, epoch=2)
    n = len(batches)
    assert shard_batches(batches, 0, 1) is batches  # one process: the epoch exactly as before
    for world in (2, 3, 4, n + 1):
        shares = [shard_batches(batches, r, world) for r in range(world)]
        assert {len(s) for s in shares} == {math.ceil(n / world)}  # same step count: no rank waits forever
        seen = [_key(b) for s in shares for b in s]
        assert set(seen) == {_key(b) for b in batches}  # every batch of the epoch is trained on
        # Only the fill of the last round repeats batches, and only the first ones of the epoch.
        repeats = len(seen) - len(set(seen))
        assert repeats == math.ceil(n / world) * world - n
        if n % world == 0:
            assert repeats == 0
    # Deterministic from (seed, epoch): another process computes the same share; another epoch differs.
    again = bucket_batches(lengths, max_frames=1200, max_batch=8, seed=3, epoch=2)
    assert [_key(b) for b in shard_batches(again, 1, 2)] == [_key(b) for b in shard_batches(batches, 1, 2)]
    other = bucket_batches(lengths, max_frames=1200, max_batch=8, seed=3, epoch=3)
    assert [_key(b) for b in shard_batches(other, 1, 2)] != [_key(b) for b in shard_batches(batches, 1, 2)]


def test_torchrun_environment() -> None:
    assert torchrun_environment({}) == (1, 0, 0)
    assert torchrun_environment({"WORLD_SIZE": "8", "RANK": "5", "LOCAL_RANK": "1"}) == (8, 5, 1)
    for bad in ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, {"WORLD_SIZE": "two", "RANK": "0"},
                {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}):
        with pytest.raises(LstmAsrError, match="torchrun environment"):
            torchrun_environment(bad)


def test_torchrun_two_processes_train_in_sync(tiny_corpus: Path, tmp_path: Path) -> None:
    # 8 training utterances, up to 2 per batch: 4 or 5 batches an epoch, split between the 2 processes.
    recipe = write_recipe(tmp_path / "r.yaml", tiny_corpus, tmp_path / "feats", model={"hidden": 16, "layers": 2,
                          "dropout": 0.1}, training={"max_epochs": 2, "threads": 1, "log_every": 1, "lr": 0.01,
                                                     "checkpoint_every": 1, "spec_time_masks": 1})
    exp, ranks = tmp_path / "exp", tmp_path / "ranks"
    env = {**os.environ, "OMP_NUM_THREADS": "1", RANK_WEIGHTS_ENV: str(ranks), "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "lstm_asr", "train", str(recipe), "--out", str(exp)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    assert res.stdout.count("experiment: ") == 1 and res.stdout.count("epoch 2: train loss") == 1  # rank 0 talks

    # Only rank 0 wrote: one epoch record per epoch, and each epoch had half the batches (the sampler's share).
    records = [json.loads(x) for x in (exp / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [1, 2]
    # Each epoch's steps count from 1. The batcher may open an epoch with a short batch (random first-batch size), so
    # an epoch is 4 or 5 batches: 2 or 3 steps on each process, never 4 (the other process's share).
    steps = [r["step"] for r in records if r["kind"] == "step"]
    epochs = [[]]
    for s in steps:
        if s == 1 and epochs[-1]:
            epochs.append([])
        epochs[-1].append(s)
    assert len(epochs) == 2 and all(e == list(range(1, len(e) + 1)) and len(e) in (2, 3) for e in epochs)
    written = {p.name for p in exp.iterdir()} - {"tensorboard"}  # event files when tensorboard is installed
    assert written == {"best.pt", "decode_dev", "decode_test", "last.pt", "metrics.jsonl", "recipe.yaml",
                       "results.json"}
    assert len(list((exp / "tensorboard").glob("events.*"))) <= 1
    last = load_checkpoint(exp / "last.pt")
    assert last["world_size"] == 2 and len(last["ranks"]) == 2

    # Every process ended with the same weights (gradients were averaged), the ones rank 0 saved. The processes
    # trained on different batches, so without the all-reduce they would differ.
    w0 = torch.load(ranks / "rank0.pt", weights_only=True)
    w1 = torch.load(ranks / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys() == last["state_dict"].keys()
    assert all(torch.equal(w0[k], w1[k]) and torch.equal(w0[k], last["state_dict"][k]) for k in w0)

    # Resuming with another number of processes is refused in one line.
    single = run_cli("train", str(recipe), "--out", str(exp), "--resume")
    assert single.returncode == 1 and single.stderr.count("\n") == 1, single.stderr
    assert "2 training processes" in single.stderr and "this run has 1" in single.stderr
