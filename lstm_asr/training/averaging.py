"""Checkpoint averaging: the mean of the weights of several epochs, one model (as icefall's TIMIT recipes do).

With ``training.average_last: N`` the trainer keeps each epoch's weights in ``EXP/epochs/`` (only those an
average of N by either rule can still use: the last N and the N best by dev error), and at the end writes
``EXP/averaged.pt``, the element-wise mean of the last N epochs (``training.average_by: last``) or of the N with the
lowest dev error (``best``). ``lstm-asr average EXP --last N [--by best]`` does the same afterwards. The averaged
checkpoint has ``best.pt``'s format, so every command that takes a model takes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from data_prep.corpora import resolve_units
from lstm_asr.atomic_file import write_atomically
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.errors import LstmAsrError, reporting_write_errors
from lstm_asr.nn.checkpoint import AVERAGED, load_checkpoint, save_checkpoint
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.scoring.evaluate import score_split, write_decode_dir

EPOCHS_DIR = "epochs"
INDEX = "index.json"


def epoch_path(exp: Path, epoch: int) -> Path:
    return Path(exp) / EPOCHS_DIR / f"epoch_{epoch:04d}.pt"


def read_index(exp: Path) -> dict[int, float]:
    """Epoch -> dev error of the epoch checkpoints kept in ``EXP/epochs`` (empty when there are none)."""
    path = Path(exp) / EPOCHS_DIR / INDEX
    if not path.is_file():
        return {}
    try:
        return {int(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError) as exc:
        raise LstmAsrError(f"{path}: unreadable epoch index ({exc})") from None


def select_epochs(index: dict[int, float], n: int, by: str) -> list[int]:
    """The epochs an average of ``n`` uses: the last ``n``, or the ``n`` with the lowest dev error (ties: later)."""
    if by == "best":
        chosen = sorted(index, key=lambda e: (index[e], -e))[:n]
    elif by == "last":
        chosen = sorted(index)[-n:]
    else:
        raise LstmAsrError(f"unknown averaging rule {by!r} (use last or best)")
    return sorted(chosen)


def keep_epoch(exp: Path, checkpoint: dict[str, Any], epoch: int, dev_error: float, n: int) -> None:
    """Save one epoch's model checkpoint and drop those no average of ``n`` (last or best) can use any more."""
    index = read_index(exp)
    index[epoch] = float(dev_error)
    save_checkpoint(checkpoint, epoch_path(exp, epoch))
    needed = set(select_epochs(index, n, "last")) | set(select_epochs(index, n, "best"))
    index_path = Path(exp) / EPOCHS_DIR / INDEX
    kept = {e: v for e, v in index.items() if e in needed}
    with reporting_write_errors(index_path, "the epoch index"):
        write_atomically(index_path, lambda f: f.write(json.dumps(kept, indent=1).encode()))
    for e in set(index) - needed:
        epoch_path(exp, e).unlink(missing_ok=True)


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors (summed in float64); other tensors are taken from the last."""
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[-1])
    for s in states:
        if list(s) != keys:
            raise LstmAsrError("cannot average checkpoints of different models (their weights differ in names)")
    out = {}
    for k in keys:
        last = states[-1][k]
        if last.is_floating_point():
            total = torch.zeros(last.shape, dtype=torch.float64)
            for s in states:
                total += s[k].to(torch.float64)
            out[k] = (total / len(states)).to(last.dtype)
        else:
            out[k] = last.clone()
    return out


def average_experiment(exp: Path, n: int, by: str = "last") -> tuple[Path, list[int]]:
    """Write ``EXP/averaged.pt`` from ``n`` kept epochs chosen ``by`` last or best; returns it and the epochs."""
    exp = Path(exp)
    if n < 1:
        raise LstmAsrError(f"average: --last must be at least 1, got {n}")
    index = read_index(exp)
    if not index:
        raise LstmAsrError(f"{exp / EPOCHS_DIR}: no per-epoch checkpoints to average (train with "
                           "training.average_last: N)")
    if len(index) < n:
        print(f"{exp}: {len(index)} epoch checkpoint(s) kept, fewer than {n}: averaging those")
    epochs = select_epochs(index, n, by)
    ckpts = [load_checkpoint(epoch_path(exp, e)) for e in epochs]
    first = ckpts[-1]
    for e, c in zip(epochs, ckpts, strict=True):
        if c.get("model_config") != first.get("model_config"):
            raise LstmAsrError(f"{epoch_path(exp, e)}: a checkpoint of another model than epoch {epochs[-1]}'s")
    averaged = {k: v for k, v in first.items() if k not in ("state_dict", "dev_per", "epoch")}
    averaged.update(state_dict=average_state_dicts([c["state_dict"] for c in ckpts]), averaged_epochs=epochs,
                    averaged_by=by, epoch=epochs[-1])
    save_checkpoint(averaged, exp / AVERAGED)
    return exp / AVERAGED, epochs


def score_averaged(model: torch.nn.Module, out: Path, n: int, by: str, dev_split: FeatureSplit,
                   test_split: FeatureSplit, tokens: list[str], score_units: Any, c: Any,
                   metric: str) -> dict[str, Any]:
    """Average the kept epochs into ``averaged.pt`` and score it on dev and test (``decode_<split>_averaged``)."""
    path, epochs = average_experiment(out, n, by)
    model.load_state_dict(load_checkpoint(path)["state_dict"])
    scored: dict[str, Any] = {"checkpoint": path.name, "epochs": epochs, "by": by}
    for name, split in (("dev", dev_split), ("test", test_split)):
        score = score_split(split, decode_split(model, split), tokens, score_units)
        write_decode_dir(out / f"decode_{name}_averaged", split, score,
                         {"split": name, "decoding": "greedy", "model": path.name, "epochs": epochs,
                          "units": resolve_units(c.type, c.units), "metric": metric})
        scored[name] = {"per": round(score.counts.rate * 100, 2), **score.to_dict()}
    print(f"averaged.pt (epochs {', '.join(map(str, epochs))}, {by}): dev {metric} {scored['dev']['per']:.2f}%, "
          f"test {scored['test']['per']:.2f}%")
    return scored
