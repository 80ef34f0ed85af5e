"""``lstm-asr train``: fit a BLSTM-CTC model to a recipe's prepared corpus.

The loop in one place: length-bucketed batches, CTC loss, gradient-norm clipping, SGD with momentum or Adam, a dev
PER after every epoch, the best checkpoint kept by dev PER, early stopping with patience, an optional wall-clock
budget. The experiment folder holds::

    recipe.yaml     the recipe as run (defaults and --set overrides included)
    metrics.jsonl   one JSON object per logged step and per epoch
    best.pt         the model with the lowest dev PER so far
    last.pt         the model and optimiser after the latest epoch
    results.json    dev and test error rates with S/D/I counts, the scoring convention, sizes and times
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .batching import bucket_batches
from .checkpoint import load_checkpoint, save_checkpoint
from .corpus import score_units_for
from .errors import LstmAsrError
from .evaluate import CONVENTIONS, decode_split, per_speaker, score_split, write_decode_dir
from .feature_store import FeatureSplit
from .features import Normalizer
from .model import BLSTMCTC, ModelConfig, ctc_loss
from .prep import feature_config, load_splits
from .recipe import Recipe, dump_recipe


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def normalizer_from(split: FeatureSplit, chunk: int = 200_000) -> Normalizer:
    """Mean/variance of the training features, accumulated in float64 chunks (bounded memory)."""
    feats = split.all_feats()
    total = torch.zeros(feats.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for start in range(0, feats.shape[0], chunk):
        block = torch.from_numpy(np.asarray(feats[start : start + chunk], dtype=np.float64))
        total += block.sum(0)
        total_sq += (block * block).sum(0)
    return Normalizer.from_stats(feats.shape[0], total, total_sq)


def build_model(recipe: Recipe, input_dim: int, num_classes: int) -> BLSTMCTC:
    m = recipe.model
    cfg = ModelConfig(input_dim=input_dim, num_classes=num_classes, hidden=m.hidden, layers=m.layers,
                      dropout=m.dropout, init=m.init, init_scale=m.init_scale)
    return BLSTMCTC(cfg)


def build_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = recipe.training
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def model_checkpoint(model: BLSTMCTC, recipe: Recipe, tokens: list[str], **extra: Any) -> dict[str, Any]:
    """Everything needed to decode with this model, and nothing that needs pickling."""
    return {
        "model_config": asdict(model.config),
        "features": feature_config(recipe).to_dict(),
        "tokens": tokens,
        "corpus_type": recipe.corpus.type,
        "recipe": recipe.to_dict(),
        "state_dict": model.state_dict(),
        **extra,
    }


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed each time: a crash loses nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, **record: Any) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


def train(recipe: Recipe, out: Path, show_progress: bool = True) -> dict[str, Any]:
    """Train, keep the best model by dev PER, and score it on dev and test. Returns ``results.json``'s content."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    t = recipe.training
    torch.set_num_threads(t.threads or os.cpu_count() or 1)
    seed_everything(t.seed)
    c = recipe.corpus
    splits = load_splits(recipe, show_progress=show_progress)
    train_split, dev_split, test_split = splits[c.train_split], splits[c.dev_split], splits[c.test_split]
    tokens = train_split.index["tokens"]
    score_units = score_units_for(c.type)

    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(dump_recipe(recipe))
    log = MetricsLog(out / "metrics.jsonl")
    model = build_model(recipe, train_split.dim, len(tokens))
    model.normalizer.load_state_dict(normalizer_from(train_split).state_dict())
    optimizer = build_optimizer(recipe, model)
    params = model.num_parameters()
    print(f"Model: {model.config.layers}x{model.config.hidden} BLSTM, {params / 1e6:.2f}M weights, "
          f"{len(tokens)} outputs; train {len(train_split)} utterances, {train_split.num_frames.sum()} frames")

    best_per, best_epoch, bad_epochs, skipped_steps = math.inf, 0, 0, 0
    start = time.time()
    budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf
    out_of_time = False
    epoch = 0
    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[fps]:,.0f} frames/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress) as bar:
        for epoch in range(1, t.max_epochs + 1):
            batches = bucket_batches(train_split.num_frames, t.max_frames, t.max_batch, seed=t.seed, epoch=epoch)
            task = bar.add_task("train", total=len(batches), epoch=epoch, loss=float("nan"), fps=0.0)
            model.train()
            epoch_loss, epoch_utts, epoch_frames, epoch_start = 0.0, 0, 0, time.time()
            for step, idx in enumerate(batches, 1):
                feats, lengths, targets, target_lengths = train_split.batch(idx)
                loss = ctc_loss(model(feats, lengths), lengths, targets, target_lengths)
                optimizer.zero_grad(set_to_none=True)
                if not torch.isfinite(loss):
                    skipped_steps += 1  # a non-finite loss must not reach the weights
                    continue
                loss.backward()
                if t.grad_clip > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                    if not torch.isfinite(grad_norm):
                        skipped_steps += 1
                        continue
                optimizer.step()
                epoch_loss += loss.item() * len(idx)
                epoch_utts += len(idx)
                epoch_frames += int(lengths.sum())
                fps = epoch_frames / max(time.time() - epoch_start, 1e-9)
                bar.update(task, advance=1, loss=epoch_loss / epoch_utts, fps=fps)
                if step % t.log_every == 0:
                    log.write(kind="step", epoch=epoch, step=step, loss=round(loss.item(), 4),
                              frames_per_s=round(fps, 1))
                if time.time() - start > budget:
                    out_of_time = True
                    break
            bar.update(task, visible=False)
            train_seconds = time.time() - epoch_start
            dev = score_split(dev_split, decode_split(model, dev_split), tokens, score_units)
            per = dev.counts.rate
            improved = per < best_per
            if improved:
                best_per, best_epoch, bad_epochs = per, epoch, 0
                save_checkpoint(model_checkpoint(model, recipe, tokens, epoch=epoch, dev_per=per), out / "best.pt")
            else:
                bad_epochs += 1
            save_checkpoint(model_checkpoint(model, recipe, tokens, epoch=epoch, dev_per=per,
                                             optimizer=optimizer.state_dict()), out / "last.pt")
            record = dict(kind="epoch", epoch=epoch, train_loss=round(epoch_loss / max(epoch_utts, 1), 4),
                          dev_per=round(per * 100, 2), best_dev_per=round(best_per * 100, 2),
                          frames_per_s=round(epoch_frames / max(train_seconds, 1e-9), 1),
                          epoch_seconds=round(train_seconds, 1), skipped_steps=skipped_steps)
            log.write(**record)
            bar.console.print(f"epoch {epoch}: train loss {record['train_loss']:.3f}, dev PER "
                              f"{record['dev_per']:.2f}%{' (best)' if improved else ''}, "
                              f"{record['frames_per_s']:,.0f} frames/s, {train_seconds:.0f} s")
            if bad_epochs >= t.patience:
                bar.console.print(f"early stopping: no dev improvement in {t.patience} epochs")
                break
            if out_of_time:
                bar.console.print(f"stopping: training budget of {t.max_minutes:g} minutes reached")
                break
    train_minutes = (time.time() - start) / 60
    if not (out / "best.pt").exists():
        raise LstmAsrError(f"{out}: training produced no checkpoint")
    best = load_checkpoint(out / "best.pt")
    model.load_state_dict(best["state_dict"])
    results: dict[str, Any] = {
        "recipe": recipe.name, "corpus": str(recipe.corpus.path), "corpus_type": c.type,
        "scoring": CONVENTIONS.get(c.type, "exact symbols"), "parameters": params,
        "epochs": epoch, "best_epoch": best_epoch, "train_minutes": round(train_minutes, 2),
        "skipped_steps": skipped_steps, "decoding": "greedy",
    }
    for name, split in (("dev", dev_split), ("test", test_split)):
        score = score_split(split, decode_split(model, split), tokens, score_units)
        write_decode_dir(out / f"decode_{name}", split, score, {"split": name, "decoding": "greedy"})
        results[name] = {"per": round(score.counts.rate * 100, 2), **score.to_dict(),
                         "per_speaker": per_speaker(split, score)}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
