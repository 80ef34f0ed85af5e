"""Searches for RNN transducer models: batched greedy decoding and a time-synchronous beam search.

Both read the encoder frames projected for the joint network ((B, T, J), what a transducer model's forward gives
without targets) and drive the model's prediction and joint networks through three methods
(:class:`TransducerParts`): ``initial_state(n)``, ``predict(tokens, state)`` and ``join(enc, pred)``. The eager
model (:class:`lstm_asr.nn.transducer.Transducer`) and the exported TorchScript module have them both.

**Greedy** (batched): at each frame, every utterance of the batch emits the joint network's best symbol; a label
is emitted and the same frame is read again with the updated prediction network, blank moves on to the next frame,
and at most ``max_symbols`` labels are emitted per frame. :class:`GreedyState` holds everything the search needs to
go on, so :func:`greedy_advance` can consume encoder frames as they arrive, chunk by chunk, and give the same result
as on the whole sequence.

**Beam search**: the time-synchronous decoding of Saon et al. (2020, "TSD"), with Graves' (2012) merging of
hypotheses that reach the same label sequence. At each frame up to ``max_symbols`` expansion steps run; in a step,
every live hypothesis is extended by blank (it moves on to the next frame: the set ``B``) and by every label (it
stays in the frame); the ``beam`` best of ``B`` and the label extensions together survive. Hypotheses are label
sequences, not alignments: their probabilities sum over the alignments explored, and two that reach the same
sequence are merged by adding their probabilities. Without pruning (a beam at least as wide as the number of
sequences) the search is exact: it returns the sequence with the highest probability, summed over every alignment
with at most ``max_symbols`` labels per frame (``tests/test_transducer.py`` checks it against exhaustive
enumeration). With ``beam=1`` it makes greedy decoding's choices, step by step.

The beam is a set of parallel tensors (canonical label-sequence ids, scores, alignment nodes), so each expansion
step is one joint call over all hypotheses, one top-k and at most one prediction-network step over the surviving
extensions: no Python loop over hypotheses. Sequences are nodes of a trie whose (parent, label) pairs are kept
sorted (:class:`SequenceTrie`), so equal sequences get equal ids and merging is a ``unique`` over ids; the prediction
network runs once per sequence ever kept (:class:`PredictionCache`), not once per extension, since a hypothesis
that survives many frames is extended by the same labels at each.

Token times are those of the most probable alignment the search kept for each hypothesis: every extension is also
a node of an alignment tree (its parent and frame), and when two hypotheses merge, the more probable one's node
stays. With ``beam=1`` they are greedy decoding's frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from lstm_asr.decoding.search import DEFAULT_BEAM_PRUNE_LOGPROB, Result, SearchConfig

BLANK = 0
DEFAULT_MAX_SYMBOLS = 4  # labels emitted per encoder frame at most (greedy and beam search alike)

State = tuple[torch.Tensor, torch.Tensor]


class TransducerParts(Protocol):
    """The steps a transducer search drives (a :class:`~lstm_asr.nn.transducer.Transducer` or its export)."""

    def initial_state(self, n: int) -> State: ...

    def predict(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]: ...

    def join(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor: ...


def _index_state(state: State, idx: torch.Tensor) -> State:
    return state[0][:, idx], state[1][:, idx]


@dataclass
class GreedyState:
    """Where a batched greedy search stands after the frames it has read: each utterance's emitted labels, their
    frames, the best path's log probability, and the prediction network's state and output for its context."""

    pred: torch.Tensor  # (B, J) projected prediction vector for each utterance's labels so far
    state: State
    tokens: list[list[int]] = field(default_factory=list)
    frames: list[list[int]] = field(default_factory=list)
    scores: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    frames_read: int = 0  # encoder frames consumed so far (the absolute index of the next one)


def greedy_start(parts: TransducerParts, batch: int) -> GreedyState:
    """The state before any frame: the prediction network has read the start symbol (blank) only."""
    state = parts.initial_state(batch)
    pred, state = parts.predict(torch.full((batch,), BLANK, dtype=torch.long, device=state[0].device), state)
    return GreedyState(pred, state, [[] for _ in range(batch)], [[] for _ in range(batch)],
                       torch.zeros(batch, dtype=torch.float64))


@torch.inference_mode()
def greedy_advance(parts: TransducerParts, state: GreedyState, enc: torch.Tensor, lengths: torch.Tensor,
                   max_symbols: int = DEFAULT_MAX_SYMBOLS) -> GreedyState:
    """Read the next encoder frames of every utterance: ``enc`` (B, T, J), ``lengths`` (B,) valid frames of each
    in this chunk (0 for an utterance that has ended). Updates and returns ``state``."""
    lengths = lengths.to(enc.device)
    pred, pstate = state.pred, state.state
    for t in range(enc.shape[1]):
        active = t < lengths
        if not bool(active.any()):
            break
        frame = enc[:, t]
        for s in range(max_symbols + 1):
            lp = parts.join(frame, pred)
            best_lp, best = lp.max(dim=-1)
            if s == max_symbols:  # the cap: only blank may follow
                best, best_lp = torch.zeros_like(best), lp[:, BLANK]
            state.scores += torch.where(active, best_lp, torch.zeros_like(best_lp)).double().cpu()
            emit = active & (best != BLANK)
            rows = emit.nonzero().flatten()
            if rows.numel() == 0:
                break
            labels = best[rows]
            for b, k in zip(rows.tolist(), labels.tolist(), strict=True):  # per emitted label, not per frame
                state.tokens[b].append(k)
                state.frames[b].append(state.frames_read + t)
            new_pred, new_state = parts.predict(labels, _index_state(pstate, rows))
            pred = pred.index_copy(0, rows, new_pred)
            pstate = (pstate[0].index_copy(1, rows, new_state[0]), pstate[1].index_copy(1, rows, new_state[1]))
            active = emit
    state.pred, state.state = pred, pstate
    state.frames_read += enc.shape[1]
    return state


def greedy_results(state: GreedyState) -> list[Result]:
    """The best path of each utterance so far."""
    return [Result(tuple(t), float(s), tuple(f)) for t, f, s in zip(state.tokens, state.frames,
                                                                      state.scores.tolist(), strict=True)]


def greedy_search(parts: TransducerParts, enc: torch.Tensor, lengths: torch.Tensor,
                  max_symbols: int = DEFAULT_MAX_SYMBOLS) -> list[Result]:
    """Greedy decoding of a padded batch of encoder frames (B, T, J) with ``lengths`` (B,)."""
    state = greedy_start(parts, enc.shape[0])
    return greedy_results(greedy_advance(parts, state, enc, lengths, max_symbols))


def path_from_root(parent: list[np.ndarray], value: list[np.ndarray], node: int) -> tuple[int, ...]:
    """The values of the nodes from the root's child down to ``node`` in a tree stored as chunks of parallel arrays
    (node ``i``: ``parent[i]``, ``value[i]``; node 0, the root, holds no value)."""
    parents, values = np.concatenate(parent), np.concatenate(value)
    out = []
    while node > 0:
        out.append(int(values[node]))
        node = int(parents[node])
    return tuple(reversed(out))


class SequenceTrie:
    """Label sequences as integer ids, equal sequences always the same id: node ``(parent, label)`` is looked up
    in a sorted array of keys ``parent * classes + label`` (``searchsorted``), so a batch of extensions is found
    or added with a few array operations. Node 0 is the empty sequence."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.keys = np.zeros(0, dtype=np.int64)  # sorted
        self.key_ids = np.zeros(0, dtype=np.int64)
        self.parent = [np.full(1, -1, dtype=np.int64)]
        self.label = [np.full(1, -1, dtype=np.int64)]
        self.size = 1

    def child(self, parents: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Ids of the sequences ``parents[i] + labels[i]``, created where new."""
        keys = parents * self.num_classes + labels
        pos = np.searchsorted(self.keys, keys)
        found = (pos < self.keys.size) & (self.keys[np.minimum(pos, self.keys.size - 1)] == keys) \
            if self.keys.size else np.zeros(keys.size, dtype=bool)
        ids = np.empty(keys.size, dtype=np.int64)
        ids[found] = self.key_ids[pos[found]]
        if not found.all():
            new_keys, first, inverse = np.unique(keys[~found], return_index=True, return_inverse=True)
            new_ids = np.arange(self.size, self.size + new_keys.size)
            ids[~found] = new_ids[inverse]
            self.parent.append(parents[~found][first])
            self.label.append(labels[~found][first])
            self.size += new_keys.size
            at = np.searchsorted(self.keys, new_keys)
            self.keys = np.insert(self.keys, at, new_keys)
            self.key_ids = np.insert(self.key_ids, at, new_ids)
        return ids

    def sequence(self, node: int) -> tuple[int, ...]:
        return path_from_root(self.parent, self.label, node)


class AlignmentTree:
    """The emissions of the hypotheses' alignments: node ``i`` emitted a label at ``frame[i]`` after ``parent[i]``
    (node 0: nothing emitted yet). Grows by whole arrays per expansion step."""

    def __init__(self) -> None:
        self.parent = [np.full(1, -1, dtype=np.int64)]
        self.frame = [np.full(1, -1, dtype=np.int64)]
        self.size = 1

    def extend(self, parents: np.ndarray, frame: int) -> np.ndarray:
        ids = np.arange(self.size, self.size + parents.size)
        self.parent.append(parents.astype(np.int64))
        self.frame.append(np.full(parents.size, frame, dtype=np.int64))
        self.size += parents.size
        return ids

    def frames(self, node: int) -> tuple[int, ...]:
        return path_from_root(self.parent, self.frame, node)


class PredictionCache:
    """The prediction network's output and state for every label sequence of a :class:`SequenceTrie`, computed once:
    a hypothesis extended by the same label at many frames (or reached again after a merge) costs no network step.
    Rows are sequence ids; storage grows by doubling."""

    def __init__(self, parts: TransducerParts) -> None:
        self.parts = parts
        h, c = parts.initial_state(1)
        pred, (h, c) = parts.predict(torch.full((1,), BLANK, dtype=torch.long, device=h.device), (h, c))
        self.pred, self.h, self.c = pred, h, c  # row 0: the empty sequence (the start symbol read)
        self.filled = np.ones(1, dtype=bool)

    def _grow(self, size: int) -> None:
        cap = self.filled.size
        if size <= cap:
            return
        new = max(size, 2 * cap)
        self.pred = torch.cat([self.pred, self.pred.new_zeros(new - cap, self.pred.shape[1])])
        self.h = torch.cat([self.h, self.h.new_zeros(self.h.shape[0], new - cap, self.h.shape[2])], 1)
        self.c = torch.cat([self.c, self.c.new_zeros(self.c.shape[0], new - cap, self.c.shape[2])], 1)
        self.filled = np.concatenate([self.filled, np.zeros(new - cap, dtype=bool)])

    def extend(self, ids: np.ndarray, parents: np.ndarray, labels: np.ndarray) -> None:
        """Make sure the sequences ``ids`` (= ``parents`` + ``labels``) are computed: one network step for the new
        ones together."""
        self._grow(int(ids.max()) + 1)
        new = ~self.filled[ids]
        if not new.any():
            return
        ids, first = np.unique(ids[new], return_index=True)
        parent = torch.from_numpy(parents[new][first]).to(self.pred.device)
        label = torch.from_numpy(labels[new][first]).to(self.pred.device)
        pred, (h, c) = self.parts.predict(label, (self.h[:, parent], self.c[:, parent]))
        rows = torch.from_numpy(ids).to(self.pred.device)
        self.pred[rows], self.h[:, rows], self.c[:, rows] = pred, h, c
        self.filled[ids] = True


@dataclass
class _Beam:
    """Hypotheses as parallel tensors: canonical sequence ids (:class:`SequenceTrie`), log probabilities and the
    node of each one's best alignment (:class:`AlignmentTree`)."""

    ids: torch.Tensor  # (K,) int64
    scores: torch.Tensor  # (K,) float64
    align: torch.Tensor  # (K,) int64

    def take(self, idx: torch.Tensor) -> _Beam:
        return _Beam(self.ids[idx], self.scores[idx], self.align[idx])

    @staticmethod
    def cat(a: _Beam, b: _Beam) -> _Beam:
        return _Beam(torch.cat([a.ids, b.ids]), torch.cat([a.scores, b.scores]), torch.cat([a.align, b.align]))

    def merged(self) -> _Beam:
        """Hypotheses with the same label sequence become one, their probabilities added; the most probable one
        gives its alignment (the prediction network's state is the same: it depends on the labels only)."""
        uniq, inverse = torch.unique(self.ids, return_inverse=True)
        if uniq.numel() == self.ids.numel():
            return self
        n = uniq.numel()
        top = torch.full((n,), -torch.inf, dtype=self.scores.dtype).scatter_reduce(0, inverse, self.scores, "amax")
        total = torch.zeros(n, dtype=self.scores.dtype).index_add_(0, inverse, (self.scores - top[inverse]).exp())
        is_top = self.scores == top[inverse]
        rep = torch.full((n,), self.ids.numel(), dtype=torch.long).scatter_reduce(
            0, inverse[is_top], torch.arange(self.ids.numel())[is_top], "amin")
        out = self.take(rep)
        out.scores = top + total.log()
        return out


@torch.inference_mode()
def beam_search(parts: TransducerParts, enc: torch.Tensor, beam: int = 16, nbest: int = 1,
                max_symbols: int = DEFAULT_MAX_SYMBOLS, prune: float | None = None) -> list[Result]:
    """Time-synchronous transducer beam search over one utterance's encoder frames (T, J).

    ``prune`` (nats), when set, also drops candidates that far below the best one of an expansion step. Returns up
    to ``nbest`` hypotheses, best first, with the log probability summed over the alignments the search kept and
    each token's frame in the most probable of those alignments.
    """
    if beam < 1 or nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1, got beam={beam}, nbest={nbest}")
    cache = PredictionCache(parts)
    trie, tree = SequenceTrie(0), AlignmentTree()  # the trie learns the number of classes from the joint
    zero = torch.zeros(1, dtype=torch.long)
    hyps = _Beam(zero, torch.zeros(1, dtype=torch.float64), zero)
    for t in range(enc.shape[0]):
        frame = enc[t].unsqueeze(0)
        live, done = hyps, None
        for s in range(max_symbols + 1):
            rows = live.ids.to(cache.pred.device)
            lp = parts.join(frame, cache.pred[rows]).to("cpu", torch.float64)  # (K, V): one joint call for all
            trie.num_classes = lp.shape[1]
            ended = _Beam(live.ids, live.scores + lp[:, BLANK], live.align)
            done = ended if done is None else _Beam.cat(done, ended).merged()
            if s == max_symbols:
                break
            ext = (live.scores.unsqueeze(1) + lp[:, 1:]).flatten()  # label extensions (K * (V - 1),)
            ended_count = done.ids.numel()
            pool = torch.cat([done.scores, ext])  # what ended the frame competes with what stays in it
            keep = torch.topk(pool, min(beam, pool.numel())).indices
            if prune is not None:
                keep = keep[pool[keep] >= pool[keep[0]] - prune]
            done = done.take(keep[keep < ended_count])
            chosen = keep[keep >= ended_count] - ended_count
            if chosen.numel() == 0:
                break
            src = torch.div(chosen, lp.shape[1] - 1, rounding_mode="floor")
            label = (chosen % (lp.shape[1] - 1) + 1).numpy()
            parents = live.ids[src].numpy()
            ids = trie.child(parents, label)
            cache.extend(ids, parents, label)
            align = torch.from_numpy(tree.extend(live.align[src].numpy(), t))
            live = _Beam(torch.from_numpy(ids), ext[chosen], align)
        assert done is not None
        hyps = done.take(torch.topk(done.scores, min(beam, done.ids.numel())).indices) \
            if done.ids.numel() > beam else done
    order = torch.argsort(hyps.scores, descending=True, stable=True)[:nbest]
    return [Result(trie.sequence(int(hyps.ids[i])), float(hyps.scores[i]), tree.frames(int(hyps.align[i])))
            for i in order.tolist()]


class TransducerSearcher:
    """The :class:`~lstm_asr.decoding.search.Decoder` of transducer models: padded encoder frames (B, T, J) and
    their lengths in, N-best lists out; greedy (batched) at beam 1, else the beam search per utterance."""

    def __init__(self, parts: TransducerParts, config: SearchConfig) -> None:
        self.parts = parts
        self.config = config

    def __call__(self, enc: torch.Tensor, lengths: torch.Tensor) -> list[list[Result]]:
        cfg = self.config
        if cfg.beam <= 1:
            return [[r] for r in greedy_search(self.parts, enc, lengths, cfg.max_symbols)]
        return [beam_search(self.parts, enc[b, :n], beam=cfg.beam, nbest=cfg.nbest, max_symbols=cfg.max_symbols,
                            prune=DEFAULT_BEAM_PRUNE_LOGPROB)
                for b, n in enumerate(lengths.tolist())]

    def describe(self) -> str:
        """A short description for reports (scores.json, summaries)."""
        if self.config.beam <= 1:
            return "transducer greedy"
        return f"transducer time-synchronous beam search, beam {self.config.beam}"
