"""The RNN transducer (Graves 2012; Graves, Mohamed & Hinton 2013): the BLSTM encoder, a prediction network over
the previous labels, and a joint network that combines the two into a distribution over blank + labels for every
(encoder frame t, label position u).

As in Graves et al. 2013 (section 2.3), the joint network is a feed-forward layer over both networks' hidden
vectors: ``h(t, u) = tanh(W_e e_t + W_p p_u + b)``, ``Pr(k | t, u) = softmax(W_o h(t, u) + b_o)``. The encoder
vector ``e_t`` is projected once per frame and the prediction vector ``p_u`` once per label position; only the sum,
the tanh and the output layer are computed on the (B, T, U+1) lattice.

The prediction network reads the previous label one-hot (the start symbol, blank, is the zero vector: Graves 2012)
or through a learned embedding (``model.pred_embedding``), with ``model.pred_layers`` LSTM layers of
``model.pred_hidden`` cells; or, with ``model.pred_context: N``, it is stateless (Ghodsi et al. 2020): the last N
labels embedded, concatenated and projected (:class:`StatelessPredictionNetwork`, the decoder sherpa-onnx runs).

The encoder is :class:`~lstm_asr.nn.model.BLSTMEncoder`, with the parameter names of the CTC model, so a trained CTC
model's encoder loads into a transducer as it is (``training.init_encoder_from``).

Memory: the lattice tensors are B x T x (U+1) x (joint_dim + classes) floats. :func:`transducer_loss` computes the
joint and the loss in groups of utterances whose lattice fits ``joint_budget_mb``, each group recomputed in the
backward pass (activation checkpointing), so a step's peak memory is one group's lattice whatever the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn
from torch.utils.checkpoint import checkpoint

from lstm_asr.nn.model import BLSTMEncoder, ModelConfig, init_weights

BLANK = 0
DEFAULT_JOINT_BUDGET_MB = 1024.0
# float32 values the joint and the loss hold per lattice cell beyond the joint's width: the logits, their
# log-softmax and gradient inside rnnt_loss, and the gradient flowing back through the output layer.
_CELL_CLASS_COPIES = 4
_CELL_JOINT_COPIES = 3  # the sum, its tanh (saved for the backward pass), and the tanh's gradient


class PredictionNetwork(nn.Module):
    """LSTM over the previous labels: (N, U) label ids in (0 = blank, the start symbol), (N, U, hidden) out."""

    def __init__(self, num_classes: int, hidden: int, layers: int, embedding: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, embedding) if embedding else None
        self.lstm = nn.LSTM(embedding or num_classes - 1, hidden, num_layers=layers, batch_first=True)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The LSTM's input for label ids: an embedding, or one-hot over the labels with blank as zeros."""
        if self.embedding is not None:
            return self.embedding(tokens)
        return F.one_hot(tokens, self.num_classes)[..., 1:].to(self.lstm.weight_ih_l0.dtype)

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self.lstm(self.embed(tokens), state)
        return out, state


    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero LSTM states for ``n`` hypotheses: (layers, n, hidden) twice."""
        weight = self.lstm.weight_hh_l0
        shape = (self.lstm.num_layers, n, self.lstm.hidden_size)
        return weight.new_zeros(shape), weight.new_zeros(shape)

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One label per hypothesis (N,) and the states in: (N, hidden) and the new states out."""
        out, state = self(tokens.unsqueeze(1), state)
        return out[:, 0], state


NO_LABEL = -1  # a context position before the start symbol: the zero vector


class StatelessPredictionNetwork(nn.Module):
    """The stateless prediction network of Ghodsi, Liu, Tripathi & Gong (2020): the embeddings of the last
    ``context`` labels (blank, the start symbol, has an embedding of its own; positions before it are zero vectors),
    concatenated, through a linear layer and a ReLU: (N, U) label ids in, (N, U, hidden) out.

    Its "state" is the last ``context - 1`` labels, (1, N, context - 1) int64, with an empty second tensor, so the
    searches index and cache it as they do the LSTM's (h, c). It is what sherpa-onnx's transducer decoder runs (a
    function of the last ``context_size`` labels: ``lstm-asr export --format sherpa-onnx``)."""

    def __init__(self, num_classes: int, hidden: int, context: int, embedding: int) -> None:
        super().__init__()
        self.num_classes, self.context = num_classes, context
        self.embedding = nn.Embedding(num_classes, embedding or hidden)
        self.proj = nn.Linear(context * (embedding or hidden), hidden)

    def embed_contexts(self, contexts: torch.Tensor) -> torch.Tensor:
        """(..., context) label ids (NO_LABEL allowed) -> (..., hidden)."""
        known = contexts >= 0
        emb = self.embedding(contexts.clamp(min=0)) * known.unsqueeze(-1).to(self.embedding.weight.dtype)
        return torch.relu(self.proj(emb.flatten(-2)))

    def forward(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        if state is None:
            state = self.initial_state(tokens.shape[0])
        seq = torch.cat([state[0][0].to(tokens.dtype), tokens], dim=1)  # (N, context - 1 + U)
        contexts = seq.unfold(1, self.context, 1)  # (N, U, context): position u reads labels u - context + 1 .. u
        return self.embed_contexts(contexts), (seq[:, seq.shape[1] - self.context + 1:].unsqueeze(0), state[1])

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """No labels yet: (1, n, context - 1) of NO_LABEL, and an empty (1, n, 0)."""
        device = self.embedding.weight.device
        return (torch.full((1, n, self.context - 1), NO_LABEL, dtype=torch.long, device=device),
                torch.zeros((1, n, 0), dtype=torch.long, device=device))

    def step(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        out, state = self(tokens.unsqueeze(1), state)
        return out[:, 0], state


class JointNetwork(nn.Module):
    """Graves 2013's joint network; the two projections are applied by the caller once per frame / position."""

    def __init__(self, encoder_dim: int, pred_dim: int, joint_dim: int, num_classes: int) -> None:
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joint_dim)  # carries the joint's bias
        self.pred_proj = nn.Linear(pred_dim, joint_dim, bias=False)
        self.output = nn.Linear(joint_dim, num_classes)

    def logits(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Unnormalised scores of projected encoder and prediction vectors that broadcast against each other."""
        return self.output(torch.tanh(enc + pred))


class Transducer(BLSTMEncoder):
    """RNN transducer: the BLSTM encoder, a prediction network and a joint network.

    * ``forward(features, lengths)`` returns the encoder frames projected for the joint network, (B, T', J): what
      the searches (``lstm_asr/decoding/transducer_search.py``), windowed decoding and dev decoding read where a CTC
      model gives log-probabilities;
    * ``forward(features, lengths, targets, target_lengths)`` returns the batch's mean transducer loss (nats per
      utterance), with ``targets`` concatenated as for CTC; training calls this form (so data-parallel training
      sees the whole network in one forward call);
    * :meth:`initial_state`, :meth:`predict` and :meth:`join` are the steps a search drives.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        self.predictor: PredictionNetwork | StatelessPredictionNetwork
        if config.pred_context:
            self.predictor = StatelessPredictionNetwork(config.num_classes, config.pred_hidden, config.pred_context,
                                                        config.pred_embedding)
        else:
            self.predictor = PredictionNetwork(config.num_classes, config.pred_hidden, config.pred_layers,
                                               config.pred_embedding)
        self.joint = JointNetwork(self.encoder_dim, config.pred_hidden, config.joint_dim, config.num_classes)
        init_weights(self, config)
        self.joint_budget_mb = DEFAULT_JOINT_BUDGET_MB  # not a weight: training sets it from its recipe

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor | None = None,
                target_lengths: torch.Tensor | None = None) -> torch.Tensor:
        enc = self.joint.encoder_proj(self.encode(features, lengths))
        if targets is None:
            return enc
        assert target_lengths is not None
        padded = pad_targets(targets, target_lengths)
        start = torch.full((padded.shape[0], 1), BLANK, dtype=padded.dtype, device=padded.device)
        pred, _ = self.predictor(torch.cat([start, padded], dim=1))
        return transducer_loss(self.joint, enc, self.output_lengths(lengths), self.joint.pred_proj(pred), padded,
                               target_lengths, self.joint_budget_mb)

    def initial_state(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The prediction network's state before any label for ``n`` hypotheses: zero LSTM states (layers, n,
        hidden) twice, or for a stateless one no labels (:class:`StatelessPredictionNetwork`)."""
        return self.predictor.initial_state(n)

    def predict(self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One prediction step: the last label of each of N hypotheses (N,) and their states in, the projected
        prediction vectors (N, J) and the new states out."""
        out, state = self.predictor.step(tokens, state)
        return self.joint.pred_proj(out), state

    def join(self, enc: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over blank + labels of projected encoder and prediction vectors (broadcasting)."""
        logits = self.joint.logits(enc, pred)
        return torch.log_softmax(logits.to(self.joint.output.weight.dtype), dim=-1)


def pad_targets(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Concatenated label sequences (as the CTC loss takes them) -> (B, U_max) padded with blank. No loop."""
    lengths = target_lengths.to(targets.device, torch.long)
    batch, longest = lengths.numel(), int(lengths.max()) if lengths.numel() else 0
    out = targets.new_full((batch, longest), BLANK)
    if targets.numel():
        row = torch.repeat_interleave(torch.arange(batch, device=targets.device), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        col = torch.arange(targets.numel(), device=targets.device) - starts[row]
        out[row, col] = targets
    return out


def lattice_bytes(batch: int, frames: int, positions: int, joint_dim: int, num_classes: int) -> int:
    """Memory (bytes) the joint network and the loss hold for a (batch, frames, positions) lattice in training."""
    per_cell = _CELL_JOINT_COPIES * joint_dim + _CELL_CLASS_COPIES * num_classes
    return 4 * batch * frames * positions * per_cell


def joint_groups(enc_lengths: list[int], target_lengths: list[int], joint_dim: int, num_classes: int,
                 budget_mb: float) -> list[tuple[int, int]]:
    """Consecutive [start, stop) groups of utterances whose padded lattice fits ``budget_mb`` (an utterance that
    alone exceeds it is a group of its own)."""
    budget = budget_mb * 2**20
    groups, start, frames, positions = [], 0, 0, 0
    for i, (t, u) in enumerate(zip(enc_lengths, target_lengths, strict=True)):
        f, p = max(frames, t), max(positions, u + 1)
        if i > start and lattice_bytes(i + 1 - start, f, p, joint_dim, num_classes) > budget:
            groups.append((start, i))
            start, f, p = i, t, u + 1
        frames, positions = f, p
    groups.append((start, len(enc_lengths)))
    return groups


def _group_loss(joint: JointNetwork, enc: torch.Tensor, pred: torch.Tensor, targets: torch.Tensor,
                enc_lengths: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Summed transducer loss of one group, its lattice cut to the group's own longest T and U."""
    frames, labels = int(enc_lengths.max()), int(target_lengths.max())
    logits = joint.logits(enc[:, :frames, None], pred[:, None, :labels + 1])
    # rnnt_loss in float32 whatever autocast produced: its recursions lose too much in half precision.
    return AF.rnnt_loss(logits.float(), targets[:, :labels].to(torch.int32).contiguous(),
                        enc_lengths.to(torch.int32), target_lengths.to(torch.int32), blank=BLANK,
                        reduction="sum")


def transducer_loss(joint: JointNetwork, enc: torch.Tensor, enc_lengths: torch.Tensor, pred: torch.Tensor,
                    targets: torch.Tensor, target_lengths: torch.Tensor,
                    budget_mb: float = DEFAULT_JOINT_BUDGET_MB) -> torch.Tensor:
    """Mean per-utterance transducer loss (negative log likelihood, nats), ``torchaudio.functional.rnnt_loss``.

    ``enc`` (B, T, J) and ``pred`` (B, U+1, J) are the projected encoder and prediction vectors, ``targets`` (B, U)
    padded labels. Padding never reaches the loss: each utterance's lattice is read only within its own lengths.
    When the batch's lattice exceeds ``budget_mb`` the utterances are taken in groups that fit, each group's joint
    recomputed in the backward pass instead of kept, so peak memory is bounded by the budget.
    """
    enc_lengths = enc_lengths.to(enc.device)
    target_lengths = target_lengths.to(enc.device)
    groups = joint_groups(enc_lengths.tolist(), target_lengths.tolist(), joint.encoder_proj.out_features,
                          joint.output.out_features, budget_mb)
    total = enc.new_zeros((), dtype=torch.float32)
    for start, stop in groups:
        args = (enc[start:stop], pred[start:stop], targets[start:stop], enc_lengths[start:stop],
                target_lengths[start:stop])
        if len(groups) > 1 and torch.is_grad_enabled():
            total = total + checkpoint(_group_loss, joint, *args, use_reentrant=False)
        else:
            total = total + _group_loss(joint, *args)
    return total / enc.shape[0]
