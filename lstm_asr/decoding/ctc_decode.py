"""CTC decoding: batched greedy (best-path) decoding and CTC prefix beam search.

Greedy decoding is fully vectorized over the batch with torch. Prefix beam search necessarily walks the frames
in order, but inside a frame every beam is extended by every (pruned) token at once with numpy in float64, so
the Python work per frame is a fixed, small number of array calls whatever the beam and vocabulary sizes.

Prefixes live in a trie of integer node ids (parent id, token, frame), so comparing two prefixes is comparing
two ints and the label sequence of a hypothesis is recovered by walking its parents once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NEG_INF = float("-inf")


@dataclass(frozen=True)
class Hypothesis:
    """One decoded label sequence.

    ``tokens`` are label ids with blanks removed and repeats collapsed. ``score`` is, for beam search, the
    total log probability of the label sequence (summed over all its alignments); for greedy decoding, the log
    probability of the single best path. ``frames[i]`` is the frame where ``tokens[i]`` was first emitted;
    ``end_frames[i]`` (greedy only, else empty) is the last frame of that token's run, inclusive.
    """

    tokens: tuple[int, ...]
    score: float
    frames: tuple[int, ...] = ()
    end_frames: tuple[int, ...] = ()


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[Hypothesis]:
    """Best-path decode a padded batch.

    ``log_probs`` is (B, T, V) batch-first, ``lengths`` (B,) the number of valid frames of each utterance;
    frames at or after an utterance's length are ignored. Returns one :class:`Hypothesis` per utterance with
    the best path's log probability as score, and the first and last frame of each emitted token.
    """
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    batch, time, _ = log_probs.shape
    lengths = lengths.to(device=log_probs.device, dtype=torch.long)
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must be ({batch},), got shape {tuple(lengths.shape)}")
    best_lp, best = log_probs.max(dim=-1)  # (B, T)
    frame = torch.arange(time, device=log_probs.device).unsqueeze(0)
    valid = frame < lengths.unsqueeze(1)
    zero = torch.zeros((), dtype=torch.float64, device=best.device)
    scores = torch.where(valid, best_lp.double(), zero).sum(1)

    # -1 never equals a label, so frame 0 always starts a run and the last valid frame always ends one.
    edge = torch.full((batch, 1), -1, dtype=best.dtype, device=best.device)
    prev = torch.cat([edge, best[:, :-1]], dim=1)
    nxt = torch.cat([best[:, 1:], edge], dim=1)
    is_last_valid = frame == (lengths - 1).unsqueeze(1)
    label = valid & (best != blank)
    starts = label & (best != prev)
    ends = label & ((best != nxt) | is_last_valid)

    # Each non-blank run has exactly one start and one end, so row-major nonzero() pairs them up in order.
    start_idx = starts.nonzero()
    end_idx = ends.nonzero()
    tokens = best[start_idx[:, 0], start_idx[:, 1]].tolist()
    first = start_idx[:, 1].tolist()
    last = end_idx[:, 1].tolist()
    counts = starts.sum(1).tolist()
    score_list = scores.tolist()

    out = []
    offset = 0
    for b in range(batch):
        n = counts[b]
        sl = slice(offset, offset + n)
        out.append(Hypothesis(tuple(tokens[sl]), score_list[b], tuple(first[sl]), tuple(last[sl])))
        offset += n
    return out


def _as_float64(log_probs: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(log_probs, torch.Tensor):
        return log_probs.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(log_probs, dtype=np.float64)


def _candidates(
    lp: np.ndarray, blank: int, top_k: int | None, min_logprob: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame tokens that may extend a prefix, for all frames at once.

    Returns ``cand`` (T, C) non-blank token ids sorted by descending log prob, ``cand_lp`` their log probs,
    ``n_cand`` (T,) how many leading columns of each row are kept, and ``pos`` (T, V + 1): the column of each
    token in its frame's row, -1 where it is not a candidate (column V stands for "no last token").
    """
    time, vocab = lp.shape
    masked = lp.copy()
    masked[:, blank] = NEG_INF  # blank is handled separately and always kept
    width = vocab - 1
    if top_k is not None:
        width = max(0, min(width, top_k))
    if min_logprob is not None and width > 1:
        # Sort only as many columns as the most permissive frame keeps (one or two on peaky inputs): the
        # full per-frame sort would cost more than the whole search there.
        width = min(width, max(1, int((masked >= min_logprob).sum(axis=1).max())))
    if width == 0:
        empty = np.zeros((time, 0), dtype=np.int64)
        no_pos = np.full((time, vocab + 1), -1, np.int64)
        return empty, empty.astype(np.float64), np.zeros(time, np.int64), no_pos
    if width == 1:
        part = masked.argmax(axis=1)[:, None]
    elif width < vocab - 1:
        part = np.argpartition(-masked, width - 1, axis=1)[:, :width]
    else:
        part = np.broadcast_to(np.delete(np.arange(vocab), blank), (time, width))
    part_lp = np.take_along_axis(masked, part, axis=1)
    order = np.argsort(-part_lp, axis=1, kind="stable")
    cand = np.take_along_axis(part, order, axis=1)[:, :width]
    cand_lp = np.take_along_axis(part_lp, order, axis=1)[:, :width]

    n_cand = np.full(time, width, dtype=np.int64)
    if min_logprob is not None:
        n_cand = (cand_lp >= min_logprob).sum(axis=1)
        # Like pyctcdecode, never prune the frame's overall best token, so the greedy path stays reachable.
        best_is_label = cand_lp[:, 0] >= lp[:, blank]
        n_cand = np.maximum(n_cand, best_is_label.astype(np.int64))
    col = np.arange(width)
    pos = np.full((time, vocab + 1), -1, dtype=np.int64)
    np.put_along_axis(pos, cand, np.where(col[None, :] < n_cand[:, None], col[None, :], -1), axis=1)
    return cand, cand_lp, n_cand, pos


# Alternatives at a "confident" frame must be this far (beyond the beam-prune threshold) below the frame's
# best token: log 4 covers both halves (blank- and label-ending) of a prefix score, each at most the total.
_CONFIDENT_MARGIN = float(np.log(4.0))
# The score of a token removed by ``token_min_logprob`` pruning (see prefix_beam_search).
_PRUNED_LOGPROB = -1.0e4
# Shorter confident stretches are not worth the fixed cost of the closed-form update.
_MIN_STRETCH = 3


def _next_index(mask: np.ndarray) -> np.ndarray:
    """For each position t, the first index >= t where ``mask`` is true (``len(mask)`` if none)."""
    n = mask.size
    idx = np.where(mask, np.arange(n), n)
    return np.minimum.accumulate(idx[::-1])[::-1]


@dataclass
class _Confidence:
    """Per-frame facts for the confident-stretch fast path."""

    top: np.ndarray  # best token of each frame (blank included)
    top_lp: np.ndarray
    thr: np.ndarray  # every alternative must score below this for the frame to be confident
    ok0: np.ndarray  # confident, not counting a stay on the prefix's last label
    next_bad0: list[int]  # first frame >= t failing ok0
    next_bad: np.ndarray  # first frame >= t failing, with the previous label taken from the frames' best tokens
    next_label: np.ndarray  # first frame >= t whose best token is a label


def _confidence(lp: np.ndarray, blank: int, cand_lp: np.ndarray, n_cand: np.ndarray, prune: float) -> _Confidence:
    """Which frames the pruned search provably passes with a single surviving prefix.

    A frame is confident when every alternative to its best token that the search considers (another
    candidate label, blank when a label is best, a stay on the previous label) is more than ``prune`` + log 4
    below the best token. A lone prefix entering such a frame then has exactly one successor within the
    beam-prune threshold, the one that follows the frame's best token -- greedy decoding's path.
    """
    time = lp.shape[0]
    frames = np.arange(time)
    top = lp.argmax(axis=1)
    top_lp = lp[frames, top]
    thr = top_lp - prune - _CONFIDENT_MARGIN
    is_label = top != blank
    no = np.full(time, NEG_INF)
    first = cand_lp[:, 0] if cand_lp.shape[1] else no
    second = cand_lp[:, 1] if cand_lp.shape[1] > 1 else no
    # cand is sorted, so a best label is cand[:, 0] and the best other label is cand[:, 1].
    alt = np.where(is_label, np.where(n_cand >= 2, second, NEG_INF), np.where(n_cand >= 1, first, NEG_INF))
    alt = np.maximum(alt, np.where(is_label, lp[:, blank], NEG_INF))
    ok0 = alt < thr
    prev_label_frame = np.maximum.accumulate(np.where(is_label, frames, -1))
    prev_label_frame = np.concatenate([[-1], prev_label_frame[:-1]])
    has_prev = prev_label_frame >= 0
    prev_label = top[np.maximum(prev_label_frame, 0)]
    prev_lp = np.where(has_prev, lp[frames, prev_label], NEG_INF)
    ok = ok0 & ((prev_lp < thr) | (has_prev & (prev_label == top)))
    return _Confidence(top, top_lp, thr, ok0, _next_index(~ok0).tolist(), _next_index(~ok), _next_index(is_label))


def _stretch_end(conf: _Confidence, lp_ext: np.ndarray, t0: int, last: int) -> int:
    """End (exclusive) of the confident stretch from ``t0`` for a lone prefix whose last token is ``last``."""
    time = conf.top.size
    f = int(conf.next_label[t0])
    a_end = min(f, time - 1) + 1
    # Up to the stretch's first emitted label, a stay repeats the prefix's own last label.
    sl = slice(t0, a_end)
    cond = conf.ok0[sl] & ((lp_ext[sl, last] < conf.thr[sl]) | (conf.top[sl] == last))
    bad = np.flatnonzero(~cond)
    if bad.size:
        return t0 + int(bad[0])
    return int(conf.next_bad[a_end]) if a_end < time else time


def _run_stretch(conf: _Confidence, lp_ext: np.ndarray, blank_lp: np.ndarray, blank: int, t0: int, t1: int,
                 last: int, p_b0: float, p_nb0: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Closed-form update of a lone prefix over the confident frames ``t0 .. t1 - 1``.

    The prefix follows the frames' best tokens (greedy collapse). Between two emissions its scores follow
    total_s = total_(s-1) * blank_s + nb_s and nb_s = nb_(s-1) * stay_s (probabilities), which unrolls to
    total_E = sum_s nb_s * prod_(r>s) blank_r: a log-sum-exp per segment (``logaddexp.reduceat``) over
    cumulative sums; the emissions chain the segments with one more cumulative sum. No loop over frames.

    Returns the emitted tokens, their (absolute) frames, and the prefix's final blank- and label-ending scores.
    """
    tops = conf.top[t0:t1]
    prev_top = np.concatenate([[-1], tops[:-1]])
    emit = (tops != blank) & (tops != prev_top)
    emit_pos = np.flatnonzero(emit) + 1  # positions in the arrays below, where 0 is the entry state
    tokens = tops[emit_pos - 1]
    n = tops.size + 1
    seg = np.cumsum(np.concatenate([[False], emit]))  # segment 0 starts at the entry; segment j at emission j
    starts = np.concatenate([[0], emit_pos])
    stay_label = np.concatenate([[last], tokens])[seg]
    frames = np.arange(t0 - 1, t1)
    stay = lp_ext[frames[1:], stay_label[1:]]
    stay[emit] = 0.0  # the emission's own score enters through the chain below
    # The empty prefix has no label to stay on (-inf); count those frames instead of summing -inf.
    dead = np.isneginf(stay)
    cl = np.cumsum(np.concatenate([[0.0], np.where(dead, 0.0, stay)]))
    cdead = np.cumsum(np.concatenate([[0], dead]))
    cb = np.cumsum(np.concatenate([[0.0], blank_lp[t0:t1]]))
    total0 = float(np.logaddexp(p_b0, p_nb0))
    # Scores relative to each segment's reference: the entry's total for segment 0, the emission's score after.
    offset = np.zeros(starts.size)
    offset[0] = p_nb0 - total0
    nb = cl - cl[starts][seg] + offset[seg]
    nb[cdead > cdead[starts][seg]] = NEG_INF
    u = nb - cb
    u[0] = 0.0  # the entry's total, relative to itself
    ends = np.concatenate([emit_pos - 1, [n - 1]])
    g = np.logaddexp.reduceat(u, starts) + cb[ends]  # total score at each segment's end
    shifted = np.concatenate([[NEG_INF], u[:-1]])
    shifted[starts] = NEG_INF
    h = np.logaddexp.reduceat(shifted, starts) + cb[ends]  # blank-ending score at each segment's end
    # An emission repeating the previous label can only follow a blank: it extends from the blank-ending score.
    prev_tok = np.concatenate([[last], tokens[:-1]])
    c_lp = conf.top_lp[t0 - 1 + emit_pos]
    incr = np.where(tokens == prev_tok, h[:-1], g[:-1]) + c_lp
    ref = total0 + np.concatenate([[0.0], np.cumsum(incr)])
    p_b = float(ref[-1] + h[-1])
    p_nb = float(ref[-1] + nb[-1])
    return tokens, frames[emit_pos], p_b, p_nb


def prefix_beam_search(
    log_probs: torch.Tensor | np.ndarray,
    beam: int = 16,
    blank: int = 0,
    token_top_k: int | None = None,
    token_min_logprob: float | None = None,
    nbest: int = 1,
    beam_prune_logprob: float | None = None,
    skip_confident: bool = True,
    lm_scores: np.ndarray | None = None,
    lm_final: np.ndarray | None = None,
) -> list[Hypothesis]:
    """CTC prefix beam search over one utterance's (T, V) log probabilities.

    Each prefix keeps two log scores, ending in blank and ending in a label; equal prefixes reached by
    different paths are merged, and after each frame only the ``beam`` most probable prefixes survive.
    Per-frame token pruning: only the ``token_top_k`` most probable labels may extend a prefix (blank and
    staying on a prefix's last label are not affected), and -- pyctcdecode's ``token_min_logp`` rule -- no token
    with log prob below ``token_min_logprob`` is used at all in that frame, blank and label stays included,
    except the frame's best token, so the greedy path stays reachable. ``beam_prune_logprob`` (like
    pyctcdecode's ``beam_prune_logp``, but off by default) also drops prefixes more than that far below the
    frame's best one. With a beam at least as wide
    as the number of distinct prefixes and no pruning, the search is exact.

    With ``beam_prune_logprob`` set and ``skip_confident`` (the default), stretches of frames through which
    the pruned search provably keeps a single prefix (every alternative to the frame's best token more than
    the threshold + log 4 below it; typical of a trained model's peaky output) are passed in one closed-form
    step instead of frame by frame. The result is the same as frame by frame, up to float rounding.

    Shallow fusion with a token bigram LM: ``lm_scores`` (V + 1, V) is added to every extension of a prefix
    ending in token ``a`` (row V: the empty prefix) by token ``c`` -- typically ``weight * ln p(c | a)`` plus an
    insertion score -- and ``lm_final`` (V + 1,) to each prefix's score after the last frame (e.g. the weighted
    ``ln p(</s> | a)``). Scores then are acoustic log probability + LM scores, still summed over alignments.

    Returns up to ``nbest`` hypotheses (at most ``beam``), best first; ``score`` is log(p_blank + p_label) of
    the prefix after the last frame. ``frames[i]`` is the frame at which ``tokens[i]`` was appended to the
    prefix -- or a later frame where an alignment emitting it brought in more probability than the prefix had
    so far, so that a faint early alignment does not fix the token's time.
    """
    search = PrefixBeamSearch(beam=beam, blank=blank, token_top_k=token_top_k, token_min_logprob=token_min_logprob,
                              beam_prune_logprob=beam_prune_logprob, skip_confident=skip_confident,
                              lm_scores=lm_scores, lm_final=lm_final)
    if nbest < 1:
        raise ValueError(f"beam and nbest must be >= 1, got beam={beam}, nbest={nbest}")
    lp = _as_float64(log_probs)
    if lp.ndim != 2:
        raise ValueError(f"log_probs must be (T, V), got shape {lp.shape}")
    search.advance(lp)
    return search.hypotheses(nbest)


class PrefixBeamSearch:
    """CTC prefix beam search that continues from its state: :meth:`advance` with each new block of frames
    (T, V), :meth:`hypotheses` at any time (partial results while streaming; the final ones at the end).

    :func:`prefix_beam_search` is this class over one whole utterance; the options are documented there. Frames
    fed in several blocks give the result of feeding them at once (exactly, frame by frame; up to float rounding
    where confident stretches are passed in closed form, since a stretch then ends at a block's end).
    """

    def __init__(self, beam: int = 16, blank: int = 0, token_top_k: int | None = None,
                 token_min_logprob: float | None = None, beam_prune_logprob: float | None = None,
                 skip_confident: bool = True, lm_scores: np.ndarray | None = None,
                 lm_final: np.ndarray | None = None) -> None:
        if beam < 1:
            raise ValueError(f"beam and nbest must be >= 1, got beam={beam}")
        if token_top_k is not None and token_top_k < 0:
            raise ValueError(f"token_top_k must be >= 0, got {token_top_k}")
        self.beam, self.blank, self.token_top_k = beam, blank, token_top_k
        self.token_min_logprob, self.beam_prune_logprob = token_min_logprob, beam_prune_logprob
        self.skip_confident, self.lm_scores, self.lm_final = skip_confident, lm_scores, lm_final
        self.vocab: int | None = None
        self.frames_done = 0
        # Trie of prefixes; node 0 is the empty prefix. Grown as frames arrive (each frame adds at most `beam`).
        self.node_parent = np.full(1, -1, dtype=np.int64)
        self.node_token = np.zeros(1, dtype=np.int64)
        self.node_frame = np.zeros(1, dtype=np.int64)
        self.n_nodes = 1
        # The beam, as parallel arrays: node id, parent node id, last token (V for none), and the two log scores.
        self.ids = np.zeros(1, dtype=np.int64)
        self.parents = np.full(1, -1, dtype=np.int64)
        self.last: np.ndarray | None = None
        self.p_b = np.zeros(1)
        self.p_nb = np.full(1, NEG_INF)

    def _reserve(self, extra: int) -> None:
        need = self.n_nodes + extra
        if need > self.node_parent.size:
            size = max(need, 2 * self.node_parent.size)
            for name in ("node_parent", "node_token", "node_frame"):
                old = getattr(self, name)
                new = np.empty(size, dtype=np.int64)
                new[: self.n_nodes] = old[: self.n_nodes]
                setattr(self, name, new)

    def advance(self, log_probs: torch.Tensor | np.ndarray) -> PrefixBeamSearch:
        """Extend every prefix in the beam by the frames of ``log_probs`` (T, V); returns self."""
        lp = _as_float64(log_probs)
        if lp.ndim != 2:
            raise ValueError(f"log_probs must be (T, V), got shape {lp.shape}")
        time, vocab = lp.shape
        if self.vocab is None:
            if not 0 <= self.blank < vocab:
                raise ValueError(f"blank {self.blank} out of range for {vocab} classes")
            if self.lm_scores is not None and self.lm_scores.shape != (vocab + 1, vocab):
                raise ValueError(f"lm_scores must be ({vocab + 1}, {vocab}), got {self.lm_scores.shape}")
            self.vocab = vocab
            self.last = np.full(1, vocab, dtype=np.int64)
        elif vocab != self.vocab:
            raise ValueError(f"log_probs have {vocab} classes, earlier frames had {self.vocab}")
        if time == 0:
            return self
        blank, beam, lm_scores = self.blank, self.beam, self.lm_scores
        token_min_logprob, beam_prune_logprob = self.token_min_logprob, self.beam_prune_logprob
        offset = self.frames_done
        self._reserve(time * beam + time)

        cand_all, cand_lp_all, n_cand, pos_all = _candidates(lp, blank, self.token_top_k, token_min_logprob)
        if token_min_logprob is not None:
            # Pruned tokens (blank and stays included) get a floor score instead of -inf: a path through one is
            # e^-10000 below any live path, i.e. it adds exactly nothing to a log-add, while every score stays
            # finite for the closed-form stretches. Prefixes that fall that far behind are dropped below.
            pruned = (lp < token_min_logprob) & (np.arange(vocab)[None, :] != lp.argmax(axis=1)[:, None])
            lp = np.where(pruned, _PRUNED_LOGPROB, lp)
        # Column V is -inf: the empty prefix's "last token" is encoded as V, so its repeat-stay is impossible.
        lp_ext = np.concatenate([lp, np.full((time, 1), NEG_INF)], axis=1)
        blank_lp = lp[:, blank].tolist()
        n_cand_list = n_cand.tolist()
        node_parent, node_token, node_frame = self.node_parent, self.node_token, self.node_frame
        n_nodes = self.n_nodes
        ids, parents, last, p_b, p_nb = self.ids, self.parents, self.last, self.p_b, self.p_nb

        conf = None
        if self.skip_confident and beam_prune_logprob is not None and lm_scores is None and np.isfinite(lp).all():
            conf = _confidence(lp, blank, cand_lp_all, n_cand, beam_prune_logprob)
            top_list = conf.top.tolist()

        t = -1
        while t + 1 < time:
            t += 1
            if (conf is not None and ids.size == 1 and conf.next_bad0[t] - t >= _MIN_STRETCH
                    and top_list[t] != last[0]):
                end = _stretch_end(conf, lp_ext, t, int(last[0]))
                if end - t >= _MIN_STRETCH:
                    tokens, frames, pb, pnb = _run_stretch(conf, lp_ext, lp[:, blank], blank, t, end, int(last[0]),
                                                           float(p_b[0]), float(p_nb[0]))
                    n_new = tokens.size
                    if n_new:
                        new_ids = np.arange(n_nodes, n_nodes + n_new)
                        node_parent[n_nodes:n_nodes + n_new] = np.concatenate([ids, new_ids[:-1]])
                        node_token[n_nodes:n_nodes + n_new] = tokens
                        node_frame[n_nodes:n_nodes + n_new] = frames + offset
                        n_nodes += n_new
                        parents = node_parent[new_ids[-1:]].copy()
                        ids = new_ids[-1:]
                        last = tokens[-1:].astype(np.int64)
                    p_b, p_nb = np.array([pb]), np.array([pnb])
                    t = end - 1
                    continue
            total = np.logaddexp(p_b, p_nb)
            # Staying on the same prefix: a blank after anything, or a repeat of the last label that collapses.
            stay_b = total + blank_lp[t]
            stay_nb = p_nb + lp_ext[t, last]
            c = n_cand_list[t]
            if c == 0:
                p_b, p_nb = stay_b, stay_nb
                continue
            cand = cand_all[t, :c]
            # Appending a label: from either score, but a repeat of the last label needs a blank in between.
            ext = np.where(last[:, None] == cand[None, :], p_b[:, None], total[:, None]) + cand_lp_all[t, :c]
            if lm_scores is not None:
                ext = ext + lm_scores[last[:, None], cand[None, :]]

            # An extension may be a prefix already in the beam (beam entry j is beam entry i plus its last
            # label): fold its score into j's label-ending score and drop the duplicate candidate.
            j_idx, i_idx = np.nonzero(parents[:, None] == ids[None, :])
            if j_idx.size:
                col = pos_all[t, last[j_idx]]
                hit = col >= 0
                if hit.any():
                    j_idx, i_idx, col = j_idx[hit], i_idx[hit], col[hit]
                    incoming = ext[i_idx, col]
                    # A prefix often enters the beam early on a faint alignment; if the alignment emitting its
                    # last token now outweighs everything the prefix had, date the token to this frame instead.
                    node_frame[ids[j_idx[incoming > total[j_idx]]]] = t + offset
                    stay_nb[j_idx] = np.logaddexp(stay_nb[j_idx], incoming)
                    ext[i_idx, col] = NEG_INF

            k = ids.size
            scores = np.concatenate([np.logaddexp(stay_b, stay_nb), ext.ravel()])
            if scores.size > beam:
                keep = np.argpartition(scores, scores.size - beam)[scores.size - beam:]
            else:
                keep = np.arange(scores.size)
            kept_scores = scores[keep]
            if beam_prune_logprob is None:
                floor = NEG_INF if token_min_logprob is None else kept_scores.max() + _PRUNED_LOGPROB / 2
                keep = keep[kept_scores > floor]
            else:
                # On peaky inputs this leaves one or two prefixes, so the next frames are much cheaper.
                keep = keep[kept_scores >= kept_scores.max() - beam_prune_logprob]
            stays = keep[keep < k]
            ext_flat = keep[keep >= k] - k
            src, col = np.divmod(ext_flat, c)

            n_new = ext_flat.size
            new_ids = np.arange(n_nodes, n_nodes + n_new)
            new_tokens = cand[col]
            node_parent[n_nodes:n_nodes + n_new] = ids[src]
            node_token[n_nodes:n_nodes + n_new] = new_tokens
            node_frame[n_nodes:n_nodes + n_new] = t + offset
            n_nodes += n_new

            p_b = np.concatenate([stay_b[stays], np.full(n_new, NEG_INF)])
            p_nb = np.concatenate([stay_nb[stays], ext.ravel()[ext_flat]])
            parents = np.concatenate([parents[stays], ids[src]])
            last = np.concatenate([last[stays], new_tokens])
            ids = np.concatenate([ids[stays], new_ids])

        self.n_nodes = n_nodes
        self.ids, self.parents, self.last, self.p_b, self.p_nb = ids, parents, last, p_b, p_nb
        self.frames_done += time
        return self

    def hypotheses(self, nbest: int = 1, final: bool = True) -> list[Hypothesis]:
        """The ``nbest`` best prefixes so far, best first (``final``: with the LM's end-of-sentence scores)."""
        if self.vocab is None or self.frames_done == 0:
            return [Hypothesis((), 0.0 if self.lm_final is None or self.vocab is None
                               else float(self.lm_final[self.vocab]))]
        final_scores = np.logaddexp(self.p_b, self.p_nb)
        if final and self.lm_final is not None:
            final_scores = final_scores + self.lm_final[self.last]
        order = np.argsort(-final_scores, kind="stable")[:nbest]
        parent_l, token_l, frame_l = (a[: self.n_nodes].tolist() for a in (self.node_parent, self.node_token,
                                                                          self.node_frame))
        out = []
        for i in order.tolist():
            tokens: list[int] = []
            frames: list[int] = []
            node = int(self.ids[i])
            while node != 0:
                tokens.append(token_l[node])
                # Re-dating (above) may move a token past its successor's frame; keep times strictly increasing.
                frames.append(frame_l[node] if not frames else min(frame_l[node], frames[-1] - 1))
                node = parent_l[node]
            out.append(Hypothesis(tuple(reversed(tokens)), float(final_scores[i]), tuple(reversed(frames))))
        return out


def beam_search_batch(
    log_probs: torch.Tensor | np.ndarray, lengths: torch.Tensor, beam: int = 16, blank: int = 0, **kw: object
) -> list[Hypothesis]:
    """Prefix beam search on each utterance of a padded (B, T, V) batch; returns each one's best hypothesis.

    ``lengths`` (B,) gives each utterance's valid frames; ``kw`` goes to :func:`prefix_beam_search` (``nbest``
    is ignored: one hypothesis per utterance).
    """
    lp = _as_float64(log_probs)
    if lp.ndim != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {lp.shape}")
    lens = lengths.tolist() if isinstance(lengths, torch.Tensor) else list(lengths)
    kw.pop("nbest", None)
    return [prefix_beam_search(lp[b, : int(n)], beam=beam, blank=blank, **kw)[0]  # type: ignore[arg-type]
            for b, n in enumerate(lens)]
