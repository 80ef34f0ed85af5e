"""``training.init_from``: start training from every weight of a trained experiment (adaptation, fine-tuning).

The source is an experiment folder (its ``best.pt``) or a checkpoint file. It must have the same head (CTC or
transducer), the same features, and the same encoder (and, for a transducer, prediction and joint networks): the
first parameter whose shape differs is named in a one-line error. Only the weights indexed by output token may
differ, when the two token inventories do:

- CTC: ``output.weight`` / ``output.bias`` (one row per token, blank first);
- transducer: ``joint.output.*`` (one row per token), ``predictor.embedding.weight`` (one row per token) or, with
  one-hot inputs, ``predictor.lstm.weight_ih_l0`` (one column per label, blank excluded).

Those are rebuilt for this recipe's inventory: they keep this model's fresh initialisation, and the rows (columns)
of the tokens both inventories share, blank included, are copied from the source, so a shared phone starts where
the source model left it and only new tokens start from scratch. The normalisation statistics are copied too (they
are weights of the model), as ``training.init_encoder_from`` copies them. A resumed run (``--resume`` with a
``last.pt``) continues from its checkpoint and never initialises again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lstm_asr.errors import LstmAsrError
from lstm_asr.nn.checkpoint import load_checkpoint

KEY = "training.init_from"

# Parameter name -> the dimension that is indexed by token, and whether blank (id 0) is left out of it.
TOKEN_INDEXED: dict[str, tuple[int, bool]] = {
    "output.weight": (0, False),
    "output.bias": (0, False),
    "joint.output.weight": (0, False),
    "joint.output.bias": (0, False),
    "predictor.embedding.weight": (0, False),
    "predictor.lstm.weight_ih_l0": (1, True),  # one-hot previous label, blank excluded (lstm_asr/nn/transducer.py)
}


def checkpoint_path(source: str) -> Path:
    path = Path(source)
    return path / "best.pt" if path.is_dir() else path


def init_from(model: torch.nn.Module, source: str, features: dict[str, Any], tokens: list[str]) -> dict[str, Any]:
    """Copy every weight of the trained model at ``source`` into ``model`` (whose output inventory is ``tokens``);
    returns what was done, for the results."""
    path = checkpoint_path(source)
    if not path.is_file():
        raise LstmAsrError(f"{path}: no trained experiment there ({KEY}: {source}; train it first)")
    ckpt = load_checkpoint(path)
    config = ckpt.get("model_config") or {}
    theirs_head, ours_head = config.get("head", "ctc"), model.config.head
    if theirs_head != ours_head:
        raise LstmAsrError(f"{path}: a {theirs_head} model, and this recipe trains a {ours_head} one ({KEY} copies a "
                           "model of the same head; for a transducer from a CTC model use training.init_encoder_from)")
    theirs_feats = ckpt.get("features") or {}
    differ = sorted(k for k in theirs_feats.keys() | features.keys()
                    if theirs_feats.get(k, _DEFAULTS.get(k)) != features.get(k, _DEFAULTS.get(k)))
    if differ:
        raise LstmAsrError(f"{path}: trained on other features than this recipe's (features."
                           f"{', features.'.join(differ)} differ; {KEY})")
    their_tokens = list(ckpt.get("tokens") or [])
    theirs: dict[str, torch.Tensor] = ckpt["state_dict"]
    ours = model.state_dict()
    same_tokens = their_tokens == list(tokens)
    for name in sorted(ours.keys() - theirs.keys()):
        raise _mismatch(path, config, model, f"it has no {name}")
    for name in sorted(theirs.keys() - ours.keys()):
        raise _mismatch(path, config, model, f"it has {name}, this model has not")
    new_state = {}
    for name in ours:  # the model's own order: the first mismatch is the lowest layer's
        a, b = theirs[name], ours[name]
        if name in TOKEN_INDEXED and not same_tokens:
            new_state[name] = _rebuilt(name, a, b, their_tokens, list(tokens), path, config, model)
        elif tuple(a.shape) != tuple(b.shape):
            raise _mismatch(path, config, model, f"{name} is {_shape(a)} there, {_shape(b)} here")
        else:
            new_state[name] = a
    model.load_state_dict(new_state)
    shared = len(set(their_tokens) & set(tokens))
    return {"from": str(path), "epoch": ckpt.get("epoch"),
            "dev_per": round(ckpt["dev_per"] * 100, 2) if isinstance(ckpt.get("dev_per"), float) else None,
            "output": "copied" if same_tokens else f"rebuilt: {shared} of {len(tokens)} tokens copied",
            "new_tokens": [t for t in tokens if t not in their_tokens]}


_DEFAULTS: dict[str, Any] = {"normalize": "global"}


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape))


def _mismatch(path: Path, config: dict[str, Any], model: torch.nn.Module, problem: str) -> LstmAsrError:
    c = model.config
    return LstmAsrError(f"{path}: its network ({config.get('layers')}x{config.get('hidden')} "
                        f"{config.get('cell', 'lstm')}) does not fit this model's ({c.layers}x{c.hidden} {c.cell}): "
                        f"{problem} ({KEY})")


def _rebuilt(name: str, theirs: torch.Tensor, ours: torch.Tensor, their_tokens: list[str], tokens: list[str],
             path: Path, config: dict[str, Any], model: torch.nn.Module) -> torch.Tensor:
    """``ours`` (the fresh weights) with the slices of shared tokens taken from ``theirs``."""
    dim, no_blank = TOKEN_INDEXED[name]
    skip = 1 if no_blank else 0
    other = [d for d in range(theirs.dim()) if d != dim]
    if theirs.dim() != ours.dim() or any(theirs.shape[d] != ours.shape[d] for d in other) \
            or theirs.shape[dim] != len(their_tokens) - skip or ours.shape[dim] != len(tokens) - skip:
        raise _mismatch(path, config, model, f"{name} is {_shape(theirs)} there, {_shape(ours)} here")
    out = ours.clone()
    where = {t: i for i, t in enumerate(their_tokens)}
    for i, t in enumerate(tokens[skip:], start=skip):
        j = where.get(t)
        if j is not None and j >= skip:
            out.select(dim, i - skip).copy_(theirs.select(dim, j - skip))
    return out
