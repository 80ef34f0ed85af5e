"""Pretraining a transducer as Graves, Mohamed & Hinton (2013) did for PreTrans-3L-250H: the encoder from a trained
CTC network, the prediction network as a next-label language model on the training transcripts.

* ``training.init_encoder_from: EXP`` copies the normalisation statistics and bidirectional layers of a trained CTC
  experiment (its ``best.pt``, or a checkpoint file). The two models name their encoder weights alike; a source that
  is missing, not a CTC model, trained on other features or of another shape is a one-line error naming the file and
  the key.
* ``training.pretrain_prediction: true`` trains the prediction network with a temporary softmax layer to predict
  each next label of the training transcripts (blank stands for the end of the sentence), with Adam, for at most
  ``training.prediction_lm_epochs`` epochs, keeping the epoch with the lowest dev perplexity. Each epoch is logged to
  ``metrics.jsonl`` (``kind: prediction_lm``). ``training.prediction_lm_text`` adds transcripts from a file.

Both run once, at the start of a fresh run, before the first batch; what they did is kept in the loop state (and so
in ``last.pt`` and ``results.json``), and a resumed run does not repeat them. They draw no numbers from the global
random generators, so a run's later batches are the same whether or not it was interrupted during pretraining.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.errors import LstmAsrError, read_user_text
from lstm_asr.nn.checkpoint import load_checkpoint
from lstm_asr.nn.model import ENCODER_PREFIXES
from lstm_asr.nn.transducer import BLANK, Transducer

LM_BATCH = 32  # sentences per prediction-network LM step


def init_encoder_from(model: Transducer, source: str, features: dict[str, Any]) -> dict[str, Any]:
    """Copy a trained CTC model's encoder into ``model``; returns what was copied, for the results."""
    key = "training.init_encoder_from"
    path = Path(source)
    ckpt_path = path / "best.pt" if path.is_dir() else path
    if not ckpt_path.is_file():
        raise LstmAsrError(f"{ckpt_path}: no trained CTC experiment there ({key}: {source}; train it first)")
    ckpt = load_checkpoint(ckpt_path)
    head = (ckpt.get("model_config") or {}).get("head", "ctc")
    if head != "ctc":
        raise LstmAsrError(f"{ckpt_path}: a {head} model, not a CTC one ({key} takes a trained CTC experiment)")
    theirs_feats = ckpt.get("features") or {}
    differ = sorted(k for k in theirs_feats.keys() & features.keys() if theirs_feats[k] != features[k])
    if differ:
        raise LstmAsrError(f"{ckpt_path}: trained on other features than this recipe's (features."
                           f"{', features.'.join(differ)} differ; {key})")
    theirs = {k: v for k, v in ckpt["state_dict"].items() if k.startswith(ENCODER_PREFIXES)}
    ours = model.encoder_state_dict()
    problem = _shape_problem(theirs, ours)
    if problem:
        c = ckpt.get("model_config") or {}
        raise LstmAsrError(f"{ckpt_path}: its encoder ({c.get('layers')}x{c.get('hidden')} {c.get('cell', 'lstm')}) "
                           f"does not fit this model's ({model.config.layers}x{model.config.hidden} "
                           f"{model.config.cell}): {problem} ({key})")
    model.load_state_dict(theirs, strict=False)
    return {"from": str(ckpt_path), "epoch": ckpt.get("epoch"),
            "dev_per": round(ckpt["dev_per"] * 100, 2) if isinstance(ckpt.get("dev_per"), float) else None}


def _shape_problem(theirs: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> str:
    """What keeps ``theirs`` from loading into ``ours`` (first difference), or "" when it fits."""
    for name in sorted(ours.keys() - theirs.keys()):
        return f"it has no {name}"
    for name in sorted(theirs.keys() - ours.keys()):
        return f"it has {name}, this model has not"
    for name in sorted(ours):
        if tuple(theirs[name].shape) != tuple(ours[name].shape):
            shape = "x".join(map(str, theirs[name].shape))
            return f"{name} is {shape} there, {'x'.join(map(str, ours[name].shape))} here"
    return ""


def lm_sentences(split: FeatureSplit) -> list[np.ndarray]:
    """The label sequences of a prepared split."""
    return [split.labels(i) for i in range(len(split))]


def read_lm_text(path: str, tokens: list[str]) -> list[np.ndarray]:
    """Extra transcripts for the prediction network's LM: one per line, the model's tokens separated by spaces.
    A token the model does not have is a one-line error naming the file, the line and the key."""
    index = {t: i for i, t in enumerate(tokens) if i != BLANK}
    out = []
    for lineno, line in enumerate(read_user_text(Path(path), "prediction LM text").splitlines(), start=1):
        words = line.split()
        unknown = next((w for w in words if w not in index), None)
        if unknown is not None:
            raise LstmAsrError(f"{path}:{lineno}: {unknown!r} is not one of the model's {len(index)} labels, which "
                               "the prediction network has never seen (training.prediction_lm_text)")
        if words:
            out.append(np.array([index[w] for w in words], dtype=np.int64))
    return out


def _lm_batch(sentences: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs (blank + labels), next-label targets (labels + blank as end of sentence), and the mask of real ones."""
    lengths = torch.tensor([len(s) + 1 for s in sentences])
    longest = int(lengths.max())
    seq = torch.zeros(len(sentences), longest + 1, dtype=torch.long)
    for row, s in enumerate(sentences):  # one copy per sentence, not per label
        seq[row, 1:len(s) + 1] = torch.tensor(s, dtype=torch.long)  # a copy: store arrays are read-only
    mask = torch.arange(longest).unsqueeze(0) < lengths.unsqueeze(1)
    return seq[:, :-1].to(device), seq[:, 1:].to(device), mask.to(device)


def _lm_nll(model: Transducer, head: nn.Linear, sentences: list[np.ndarray], device: torch.device
            ) -> tuple[torch.Tensor, int]:
    """Summed next-label negative log likelihood of ``sentences`` and the number of predictions."""
    inputs, targets, mask = _lm_batch(sentences, device)
    out, _ = model.predictor(inputs)
    nll = nn.functional.cross_entropy(head(out).transpose(1, 2), targets, reduction="none")
    return (nll * mask).sum(), int(mask.sum())


def pretrain_prediction(model: Transducer, train: list[np.ndarray], dev: list[np.ndarray], epochs: int, lr: float,
                        seed: int, device: torch.device, log: Any, echo: Any = print) -> dict[str, Any]:
    """Train the prediction network as a next-label LM; keep the epoch with the lowest dev perplexity."""
    with torch.random.fork_rng(devices=[]):  # the temporary layer's initialisation leaves the run's generators alone
        torch.manual_seed(seed)
        head = nn.Linear(model.config.pred_hidden, model.config.num_classes).to(device)
    params = list(model.predictor.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    best: dict[str, Any] = {"dev_ppl": math.inf}
    best_state = {k: v.clone() for k, v in model.predictor.state_dict().items()}
    history = []
    was_training = model.training
    model.train()
    for epoch in range(1, epochs + 1):
        order = np.random.default_rng([seed, epoch, 17]).permutation(len(train))
        total, count = 0.0, 0
        for start in range(0, len(order), LM_BATCH):
            nll, n = _lm_nll(model, head, [train[i] for i in order[start:start + LM_BATCH]], device)
            optimizer.zero_grad(set_to_none=True)
            (nll / n).backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            total, count = total + nll.item(), count + n
        with torch.no_grad():
            dev_total, dev_count = 0.0, 0
            for start in range(0, len(dev), LM_BATCH):
                nll, n = _lm_nll(model, head, dev[start:start + LM_BATCH], device)
                dev_total, dev_count = dev_total + nll.item(), dev_count + n
        train_ppl = math.exp(total / max(count, 1))
        dev_ppl = math.exp(dev_total / max(dev_count, 1)) if dev_count else train_ppl
        history.append(round(dev_ppl, 3))
        log.write(kind="prediction_lm", epoch=epoch, train_ppl=round(train_ppl, 3), dev_ppl=round(dev_ppl, 3))
        improved = dev_ppl < best["dev_ppl"]
        echo(f"prediction network LM, epoch {epoch}: train perplexity {train_ppl:.2f}, dev {dev_ppl:.2f}"
             + (" (best)" if improved else ""))
        if improved:
            best = {"epoch": epoch, "train_ppl": round(train_ppl, 3), "dev_ppl": round(dev_ppl, 3)}
            best_state = {k: v.clone() for k, v in model.predictor.state_dict().items()}
    model.predictor.load_state_dict(best_state)
    model.train(was_training)
    return {**best, "epochs": epochs, "dev_ppl_per_epoch": history, "sentences": len(train)}
