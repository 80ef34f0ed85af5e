"""Shared fixtures: small generated TIMIT trees and one tiny trained experiment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from fake_timit import make_fake_timit

torch.set_num_threads(min(2, os.cpu_count() or 1))


def write_recipe(path: Path, corpus_path: Path, store: Path, **sections: dict) -> Path:
    """A small recipe for a fake corpus; ``sections`` update the defaults below."""
    data = {
        "corpus": {"path": str(corpus_path)},
        "features": {"store": str(store)},
        "model": {"hidden": 48, "layers": 2},
        "training": {"lr": 0.02, "max_epochs": 30, "max_frames": 100000, "max_batch": 2, "patience": 30,
                     "log_every": 1000, "threads": 2},
    }
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    path.write_text(yaml.safe_dump(data))
    return path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real console entry point (``python -m lstm_asr``) and capture its output."""
    return subprocess.run([sys.executable, "-m", "lstm_asr", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def same_threads() -> list[str]:
    """``--threads N`` for a ``decode`` run whose numbers a test compares exactly with its own: this process's torch
    thread count. The CLI's default is the machine's core count, and a CPU kernel may share a sum between threads
    by their number, which rounds differently (not observed at 1 and 2 threads, but not promised either)."""
    return ["--threads", str(torch.get_num_threads())]


def padded_batch(input_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three float64 utterances of 9, 4 and 6 frames in one padded batch, with garbage (+-1e3) in the padding."""
    x = torch.randn(3, 9, input_dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[1, 4:] = 1e3  # garbage in the padding must not matter
    x[2, 6:] = -1e3
    return x, torch.tensor([9, 4, 6])


def assert_padding_safe(model: torch.nn.Module) -> None:
    """A float64 BLSTMCTC gives each utterance of :func:`padded_batch` exactly the outputs it gets alone, and the
    batch's CTC loss exactly the gradients of the mean of the utterances' losses alone."""
    from lstm_asr.nn.model import ctc_loss

    x, lengths = padded_batch(model.config.input_dim)
    batch_out = model(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model(x[b : b + 1, :n], lengths[b : b + 1])
        torch.testing.assert_close(batch_out[b, :n], alone[0], rtol=0, atol=1e-12)
    targets, tlens, offsets = torch.tensor([1, 2, 3, 2, 4, 1, 1, 3]), torch.tensor([3, 2, 3]), [0, 3, 5]
    model.zero_grad()
    ctc_loss(model(x, lengths), lengths, targets, tlens).backward()
    batch_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for b, n in enumerate(lengths.tolist()):
        t = targets[offsets[b] : offsets[b] + tlens[b]]
        (ctc_loss(model(x[b : b + 1, :n], lengths[b : b + 1]), lengths[b : b + 1], t, tlens[b : b + 1]) / 3).backward()
    for g, p in zip(batch_grads, model.parameters(), strict=True):
        torch.testing.assert_close(g, p.grad, rtol=1e-9, atol=1e-10)


def assert_matches_reference_per_sequence(layer: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor,
                                          weights: torch.Tensor,
                                          reference: Callable[[torch.nn.Module, torch.Tensor, int], torch.Tensor]
                                          ) -> None:
    """A two-direction layer on the padded float64 batch ``x`` gives each sequence what ``reference(layer, seq,
    direction)`` (one direction over one unpadded sequence, step by step) gives forwards (direction 0) and, flipped
    back, on the reversed sequence (direction 1); and the gradients, for ``x`` and every parameter, of the fixed
    linear loss ``weights`` of the real outputs are autograd's through the reference (the padding gets none)."""
    out = layer(x, lengths)
    sum((out[b, :n] * weights[b, :n]).sum() for b, n in enumerate(lengths.tolist())).backward()
    got = [t.grad.clone() for t in (x, *layer.parameters())]
    for t in (x, *layer.parameters()):
        t.grad = None
    for b, n in enumerate(lengths.tolist()):
        seq = x[b, :n]
        ref = torch.cat([reference(layer, seq, 0), reference(layer, seq.flip(0), 1).flip(0)], -1)
        torch.testing.assert_close(out[b, :n], ref)
        (ref * weights[b, :n]).sum().backward()
        assert not got[0][b, n:].any()  # exactly zero: the padding gets no gradient
    for g, t in zip(got, (x, *layer.parameters()), strict=True):
        torch.testing.assert_close(g, t.grad)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 training utterances (2 speakers x 4), plus 1 dev and 1 core-test speaker."""
    return make_fake_timit(tmp_path_factory.mktemp("tiny") / "TIMIT", n_train=2, n_dev=1, n_core=1,
                           utts_per_speaker=4)


@pytest.fixture(scope="session")
def trained_exp(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A 2x48 BLSTM overfitted on the tiny corpus's training split (scored on it too)."""
    from lstm_asr.recipe import load_recipe
    from lstm_asr.training.train import train

    work = tmp_path_factory.mktemp("exp")
    recipe = write_recipe(work / "overfit.yaml", tiny_corpus, work / "feats",
                          corpus={"dev_split": "train", "test_split": "train"})
    exp = work / "exp"
    train(load_recipe(recipe), exp, show_progress=False)
    return exp
