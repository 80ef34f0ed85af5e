"""The training objective of each output head: the CTC loss, or the transducer loss (``model.head``).

Both give the batch's mean per-utterance loss in nats (``training.loss_reduction: sum`` scales it by the batch size
in the loop), and both say which utterances they can learn from at the model's output frame rate.
"""

from __future__ import annotations

import numpy as np
import torch

from lstm_asr.data.ctc_feasibility import ctc_feasible
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.nn.model import BLSTMEncoder, ctc_loss
from lstm_asr.nn.networks import is_transducer


def batch_loss(net: torch.nn.Module, model: BLSTMEncoder, feats: torch.Tensor, lengths: torch.Tensor,
               targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean per-utterance loss of a padded batch (``net`` is ``model``, or its data-parallel wrapper).

    CTC: the network's log-probabilities into the CTC loss. Transducer: the network's own forward with the targets,
    so the prediction and joint networks run inside the (possibly data-parallel) forward call.
    """
    if is_transducer(model):
        return net(feats, lengths, targets, target_lengths.to(targets.device))
    return ctc_loss(net(feats, lengths), model.output_lengths(lengths), targets, target_lengths)


def trainable_mask(model: BLSTMEncoder, split: FeatureSplit) -> np.ndarray:
    """Mask of the training utterances the head can learn from at the model's output rate: CTC needs a frame per
    label (and a blank between repeats); a transducer emits any number of labels per frame, so one frame does."""
    if is_transducer(model):
        return model.output_lengths(torch.as_tensor(split.num_frames.astype(np.int64))).numpy() >= 1
    return ctc_feasible(split.num_frames, split.all_labels(), split.num_labels, model.output_lengths)
