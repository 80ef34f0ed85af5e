"""Where training batches come from: the stored features, or features computed on the fly from augmented audio.

Both sources hand the training loop the same thing for a list of utterance indices of the prepared training split
-- padded features (B, T, D), lengths, concatenated targets, target lengths -- so the loop only picks one
(:func:`training_batches`). The stored path is a memory copy; the on-the-fly path reads each utterance's audio,
augments it (``lstm_asr/data/augment.py``) and computes the same Kaldi features prep stores. Its cost is measured
in ``bench/bench_augment.py``.

An augmentation may not make an utterance impossible for CTC: when speed perturbation would leave fewer output
frames than the labels need, that utterance is taken at its own speed instead, and counted (``skipped``). An audio
file that cannot be read any more (it was when prep ran) is not a crash mid-epoch either: that utterance's stored
features are used, and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from data_prep.audio import resampled
from data_prep.corpora import open_source
from data_prep.sources import Waveform
from lstm_asr.data.augment import AugmentConfig, Augmenter
from lstm_asr.data.ctc_feasibility import ctc_min_frames_all
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.split_views import ConcatSplit
from lstm_asr.errors import LstmAsrError
from lstm_asr.recipe import CorpusSection, Recipe, primary_corpus

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


class BatchSource(Protocol):
    """Training batches by utterance indices of the prepared split; ``skipped`` counts augmentations left out."""

    skipped: Counter

    def batch(self, indices: np.ndarray, epoch: int) -> Batch: ...


class StoredBatches:
    """The prepared features as stored (no augmentation)."""

    def __init__(self, split: FeatureSplit) -> None:
        self.split = split
        self.skipped: Counter = Counter()

    def batch(self, indices: np.ndarray, epoch: int) -> Batch:
        return self.split.batch(indices)


class AugmentedBatches:
    """Features computed from each utterance's augmented waveform, seeded by (seed, epoch, utterance index)."""

    def __init__(self, split: FeatureSplit, read: Callable[[int], torch.Tensor], features: FeatureConfig,
                 augmenter: Augmenter, seed: int, output_lengths: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.split = split
        self.read = read  # utterance index -> 1-D waveform at features.sample_rate
        self.features = features
        self.augmenter = augmenter
        self.seed = seed
        self.output_lengths = output_lengths
        self.min_frames = ctc_min_frames_all(split.all_labels(), split.num_labels)
        self.skipped: Counter = Counter()

    def utterance(self, i: int, epoch: int) -> torch.Tensor:
        """Features (T, D) of utterance ``i``'s augmented audio in ``epoch`` (the same every time it is asked)."""
        rng = np.random.default_rng([self.seed, epoch, i])
        try:
            wave = self.read(i)
        except LstmAsrError:  # the file went bad after prep: train on its stored features, and count it
            self.skipped["audio unreadable since prep (stored features used)"] += 1
            return torch.from_numpy(np.array(self.split.feats(i)))
        factor = self.augmenter.draw_speed(rng)
        if factor != 1.0:
            frames = self.features.num_frames(int(round(wave.numel() / factor)))
            out = int(self.output_lengths(torch.tensor([frames]))[0])
            if out < self.min_frames[i]:  # too short for its labels at this speed: keep its own speed, count it
                self.skipped["speed perturbation would make it CTC-infeasible"] += 1
                factor = 1.0
        feats = compute_features(self.augmenter(wave, rng, factor), self.features)
        post = getattr(self.split, "normalized", None)  # features.normalize utterance/speaker (split_views.py)
        return torch.from_numpy(np.asarray(post(i, feats))) if post is not None else feats

    def batch(self, indices: np.ndarray, epoch: int) -> Batch:
        feats = [self.utterance(int(i), epoch) for i in indices]  # one feature pass per utterance, not per frame
        lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.int64)
        padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
        idx = np.asarray(indices)
        targets = np.concatenate([self.split.labels(int(i)) for i in idx])
        return (padded, lengths, torch.from_numpy(targets.astype(np.int64)),
                torch.from_numpy(self.split.num_labels[idx]))


def split_reader(recipe: Recipe, split: FeatureSplit, split_name: str, rate: int) -> Callable[[int], torch.Tensor]:
    """A function from an utterance index of the prepared ``split`` to its waveform, read from the corpus."""
    return corpus_reader(recipe.corpus, split, split_name, rate)


def corpus_reader(corpus: CorpusSection, split: FeatureSplit, split_name: str,
                  rate: int) -> Callable[[int], torch.Tensor]:
    """:func:`split_reader` for one corpus section (of ``corpus:`` or ``corpora:``)."""
    source = open_source(corpus.type, Path(corpus.path), corpus)
    items = {it.utt_id: it for it in source.split(split_name).items}
    missing = [u for u in split.ids if u not in items]
    if missing:
        raise LstmAsrError(f"{corpus.path}: {len(missing)} prepared utterances (e.g. {missing[0]}) are no "
                           "longer in the corpus; run 'lstm-asr prep --force'")
    ordered = [items[u] for u in split.ids]
    read = type(source).read

    def wave(i: int) -> torch.Tensor:
        it = ordered[i]
        raw = read(str(it.path), **it.audio_options())
        if not isinstance(raw, Waveform):
            raise LstmAsrError(f"{it.path}: waveform augmentation needs audio (features.type fbank)")
        return resampled(raw.samples, raw.rate, rate)

    return wave


def training_batches(recipe: Recipe, split: FeatureSplit, features: FeatureConfig,
                     output_lengths: Callable[[torch.Tensor], torch.Tensor], cache_dir: Path | None) -> BatchSource:
    """The batch source a recipe asks for: stored features, or on-the-fly features when ``augment`` is on."""
    cfg = AugmentConfig.from_section(recipe.augment)
    if not cfg.active:
        return StoredBatches(split)
    if recipe.features.type != "fbank":
        raise LstmAsrError(f"{primary_corpus(recipe).path}: the augment section needs speech (features.type fbank)")
    augmenter = Augmenter(cfg, features.sample_rate, cache_dir)
    if isinstance(split, ConcatSplit):  # several corpora: each utterance read from its own
        by_name = {c.name: c for c in recipe.corpora}
        readers = [corpus_reader(by_name[n], part, by_name[n].train_split, features.sample_rate)
                   for n, part in zip(split.names, split.parts, strict=True)]

        def read(i: int) -> torch.Tensor:
            return readers[split.part[i]](int(split.local[i]))
    else:
        read = split_reader(recipe, split, recipe.corpus.train_split, features.sample_rate)
    # Features of the augmented audio, normalised as the split's own (utterance/speaker: split.normalized).
    return AugmentedBatches(split, read, features.raw(), augmenter, recipe.training.seed, output_lengths)
