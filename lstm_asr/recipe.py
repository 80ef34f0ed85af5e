"""Recipes: YAML files that say what to train on and how, checked against a typed schema.

A recipe is data, not code. Every key is declared here with its type and default; an unknown or misspelt key, a
wrong type or a bad value is a :class:`RecipeError` naming the recipe file and the key path
(``demo.yaml: training.lr: expected a number, got 'fast'``). ``--set key.path=value`` overrides apply before the
check, so they are checked the same way.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lstm_asr.errors import RecipeError
from lstm_asr.path_names import name_problem


@dataclass
class GenerateSection:
    """How to generate the corpus when ``corpus.path`` has none (the built-in demo corpora)."""

    kind: str = "timit"  # timit (as lstm-asr synth timit) or ondb (as lstm-asr synth ondb)
    minutes: float = 60.0  # kind timit: about this much audio in all
    seed: int = 0  # the same seed gives the same corpus
    lines: int = 600  # kind ondb: text lines to write (handwriting has lines, not minutes)


@dataclass
class UnipenSection:
    """What to take from a UNIPEN corpus (``corpus.type: unipen``; see data_prep/unipen.py)."""

    categories: list[str] = field(default_factory=lambda: ["6", "7"])  # 6 cursive words, 7 mixed-style words
    sites: list[str] = field(default_factory=list)  # site folders (abm, apc, ...); empty: every site
    exclude_sites: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)  # "site/writer-id"; empty: every writer
    level: str = "WORD"  # the .SEGMENT hierarchy level an item is (WORD, TEXT, CHARACTER, ...)
    qualities: list[str] = field(default_factory=lambda: ["GOOD", "OK", "?", ""])  # "": none given; BAD left out
    # Writer-disjoint split: a hash of each writer's id puts all of its items in train, dev or test.
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    salt: str = ""  # another string: another split of the same sizes
    test_sites: list[str] = field(default_factory=list)  # whole sites held out as split "site_test" (a new device)
    language: str = ""  # "": every site; "en": English sites only; "other": the non-English ones
    # Lines from words: the train split also gets lines of line_words_min..lines_from_words consecutive words of
    # one writer (0: none), with the writer's own word gaps where they are recorded.
    lines_from_words: int = 0
    line_words_min: int = 2
    charset: str = ""  # "": the training labels' characters; "ascii": labels with other characters are skipped


@dataclass
class CorpusSection:
    type: str = "timit"  # the reader of corpus.path (data_prep/corpora.py; docs/corpora.md)
    path: str = ""  # the corpus: its folder (or manifest file); relative to the current folder
    train_split: str = "train"  # the split trained on
    dev_split: str = "dev"  # the split that picks best.pt, drives early stopping and the schedule
    test_split: str = "test"  # the split scored at the end (TIMIT: the core test set)
    generate: GenerateSection | None = None  # generate a demo corpus at corpus.path when it holds none
    # Output units of text corpora (kaldi_dir, librispeech, manifest): "" = the corpus's own (TIMIT: phones;
    # the others: chars). phones come from the transcripts as given, or from words through ``lexicon``.
    units: str = ""
    lexicon: str = ""  # CMUdict-format pronunciation lexicon (WORD PH1 PH2 ...) for units: phones
    bpe_vocab_size: int = 100  # sentencepiece BPE vocabulary trained on the training text, for units: bpe
    allow_commands: bool = False  # run piped wav.scp entries ("cmd ... |"); off: they are refused
    # lhotse: the recording channel to train on; -1 = each supervision's own channel (several: averaged)
    channel: int = -1
    # lhotse: label each utterance with the symbols of this alignment kind of its supervision ("phone"; needs
    # units: phones) instead of its text; "" = the text
    alignment: str = ""
    # hf (Hugging Face datasets): the columns holding the transcript, the audio, and optionally the speaker and id
    text_column: str = "text"
    audio_column: str = "audio"
    speaker_column: str = ""
    id_column: str = ""
    # Recorded corpora (arctic, audio_folder, speechocean762). Phones from words: corpus.lexicon or the corpus's
    # own, then CMUdict, then word_fallback (data_prep/lexicon.py). Splits where the corpus has none: by a hash of
    # the sentence and/or speaker (data_prep/heldout.py), so one sentence is in one split in every corpus.
    prompts: str = ""  # audio_folder, arctic: prompts file ('( id "text" )' or 'id text' lines) for untranscribed audio
    split_by: str = "sentence"  # sentence | speaker | speaker_sentence (speechocean762: dev speakers only)
    dev_share: float = 0.05  # of sentences (or speakers) for dev
    test_share: float = 0.1  # ... and for test
    test_speakers: list[str] = field(default_factory=list)  # held out whole: in test only, on test sentences
    word_fallback: str = "espeak"  # words in no lexicon: espeak (espeak-ng's phonemes) or none (skip the utterance)
    unipen: UnipenSection | None = None  # corpus.type unipen: categories, sites, writers, splits


@dataclass
class CorpusEntry(CorpusSection):
    """One corpus of a multi-corpus recipe (``corpora:``): a ``corpus:`` section with a name and a sampling weight.

    ``train_split``/``dev_split``/``test_split`` say which of its splits it contributes ("" = none of that kind):
    training is the union of the training splits, dev (model selection) the union of the dev splits, and each
    corpus's test split is scored and reported on its own line. ``weight``: the corpus's share of the training
    utterances drawn per epoch (lstm_asr/data/corpus_mix.py); 0 everywhere = every utterance once per epoch.
    """

    name: str = ""  # names the corpus in results and its feature store folder (features.store/<name>)
    weight: float = 0.0
    store: str = ""  # its feature store, e.g. the one its single-corpus recipe prepared; "" = as the line above says


@dataclass
class FeaturesSection:
    num_mel_bins: int = 40  # Kaldi filterbank (torchaudio.compliance.kaldi.fbank) mel bands
    use_energy: bool = True  # ... plus the log energy
    deltas: int = 2  # ... with deltas and delta-deltas (2): 123 inputs with the defaults
    frame_length_ms: float = 25.0  # analysis window
    frame_shift_ms: float = 10.0  # frame rate of the features (the network may reduce it: stack_frames, pyramid)
    store: str = ""  # folder for the prepared features; default: <corpus.path>/../features
    # "fbank" (speech: the keys above) or "ink" (pen strokes: per-point dx, dy, dt, pen-up, start-of-stroke, and
    # the keys below; see lstm_asr/data/ink_features.py).
    type: str = "fbank"
    ink_spacing: float = 0.15  # ink: resampling distance along each trace, in core (x-)heights
    ink_deskew: bool = True  # ink: rotate the line's direction to horizontal
    ink_deslant: bool = True  # ink: shear the dominant down-stroke angle to vertical
    # ink, device independence (real pen data from many tablets; each can be switched off to measure it):
    ink_resolution: bool = False  # points to millimetres by the file's stated points per inch
    ink_arc_weighted: bool = False  # skew line and core band from points weighted by trace length (rate-free)
    ink_size: bool = True  # scale by the core (x-)height
    ink_pen_up_time: bool = True  # dt of a stroke's first point = time the pen was up (false: 0, for devices
    # that record no pen-up data or time stamps)
    # Mean/variance normalisation of the model's input (fbank): "global" (training-set statistics, in the model),
    # "utterance" (each utterance by its own statistics) or "speaker" (by the statistics of all of its speaker's
    # utterances in its split; a single file decoded without a speaker falls back to its own statistics).
    normalize: str = "global"


@dataclass
class ModelSection:
    hidden: int = 250  # cells per direction in each layer
    layers: int = 3  # stacked (bidirectional) recurrent layers
    dropout: float = 0.0  # on each layer's output during training, never on the input features
    init: str = "default"  # "default" (PyTorch's) or "uniform" (Graves 2013: every weight U(-init_scale, init_scale))
    init_scale: float = 0.1  # init: uniform's range
    # lstm (nn.LSTM), peephole (Gers & Schmidhuber 2000), gru; Greff et al. 2017's variants of the peephole LSTM:
    # nig, nfg, nog, niaf, noaf, np, cifg, fgr; lstm1997 (no forget gate, no peepholes); convlstm (Shi et al. 2015,
    # over frequency); lmu (Voelker et al. 2019)
    cell: str = "lstm"
    projection: int = 0  # LSTMP projection size per direction (cell lstm only); 0 = none
    peephole_output_activation: str = "tanh"  # peephole family: h = o * tanh(c) or, with identity, o * c (= noaf)
    stack_frames: int = 1  # input frames stacked side by side (Sak et al. 2015: 3)
    subsample: int = 1  # keep every n-th stacked frame (Sak et al. 2015: 3, i.e. 30 ms)
    pyramid: int = 0  # lowest layers after which frame pairs are concatenated (each halves the rate)
    bidirectional: bool = True  # false: a unidirectional stack (forward direction only), for the lowest latency
    # Latency-controlled BLSTM (Chen & Huo 2016, Xue & Yan 2017): chunks of chunk_frames input frames, each seeing
    # right_context more frames of look-ahead; forward state carried across chunks. 0 = whole utterances.
    chunk_frames: int = 0
    right_context: int = 0  # look-ahead input frames of each chunk (see chunk_frames)
    conv_layers: int = 0  # lowest layers that are ConvLSTM layers (any cell but convlstm, whose layers all are)
    conv_channels: int = 8  # ConvLSTM state channels (state: channels x frequency bins per direction)
    conv_kernel: int = 5  # ConvLSTM taps along frequency (odd, at most the bins: mel bins + energy)
    lmu_order: int = 32  # lmu: Legendre coefficients per memory (d)
    lmu_theta: float = 50.0  # lmu: the memory's window, in frames at the layer's frame rate
    lmu_memories: int = 8  # lmu: memory inputs (each with its own d coefficients)
    # Output head: ctc, or transducer (RNN-T, Graves 2012/2013: prediction network + joint network; the keys below)
    head: str = "ctc"
    pred_hidden: int = 250  # transducer prediction network: LSTM cells per layer (Graves 2013: one layer of 250)
    pred_layers: int = 1  # transducer prediction network: LSTM layers
    pred_embedding: int = 0  # its input: 0 = one-hot previous label (Graves 2012), N = learned N-dim embedding
    # 0: the LSTM prediction network; N: stateless, the last N labels embedded (Ghodsi et al. 2020; pred_layers
    # unused): what sherpa-onnx's transducer decoder runs (lstm-asr export --format sherpa-onnx)
    pred_context: int = 0
    joint_dim: int = 250  # joint network: tanh units over the projected encoder and prediction vectors


@dataclass
class TrainingSection:
    optimizer: str = "adam"  # "adam" or "sgd" (with momentum)
    lr: float = 1e-3  # learning rate (the schedule below changes it)
    momentum: float = 0.9  # optimizer sgd: momentum (Adam keeps its own defaults)
    weight_decay: float = 0.0  # L2 penalty, either optimizer
    max_epochs: int = 30  # epochs at most (early stopping may end sooner)
    patience: int = 5  # epochs without a better dev PER before stopping
    max_frames: int = 20000  # padded frames per batch (memory bound)
    max_batch: int = 64  # utterances per batch
    # How a batch's utterance losses make one step: "mean" (the step of one average utterance) or "sum" (to first
    # order, the steps of all its utterances one after another: the per-utterance SGD pace of Graves' papers).
    loss_reduction: str = "mean"
    # "utterance" (SGD, loss_reduction sum): a batch of B steps with momentum^B and lr (1 - momentum^B) / (1 -
    # momentum), so its momentum forgets per utterance, as per-utterance SGD does (lstm_asr/training/schedules.py).
    # Measured worse than "batch" on the demo corpus at the paper's rate (bench/RESULTS.md, issue 11): not in recipes.
    momentum_per: str = "batch"
    grad_clip: float = 5.0  # global gradient-norm clip; 0 disables
    seed: int = 0  # weights, batch order, dropout, masks, augmentation: the same seed, the same run
    threads: int = 0  # torch threads; 0 = all cores
    max_minutes: float = 0.0  # wall-clock budget for training; 0 = none
    log_every: int = 20  # batches between metrics.jsonl lines
    checkpoint_every: int = 50  # batches between mid-epoch last.pt saves (exact resume); 0 = at epoch ends only
    max_bad_steps: int = 20  # consecutive steps with a non-finite loss or gradient before the run stops
    schedule: str = "constant"  # learning rate: "constant", "newbob" (halve on dev plateau), "cosine" (per epoch)
    newbob_factor: float = 0.5  # lr multiplier when the dev error stops improving (schedule: newbob)
    weight_noise: float = 0.0  # Graves 2013 second stage: retrain from best.pt with Gaussian weight noise of this std
    noise_max_epochs: int = 0  # epochs of the weight-noise stage; 0 = training.max_epochs
    spec_time_masks: int = 0  # SpecAugment-style masks per utterance (training only): time ...
    spec_time_width: int = 20  # ... of up to this many frames
    spec_freq_masks: int = 0  # ... and frequency masks
    spec_freq_width: int = 8  # ... of up to this many feature dims
    average_last: int = 0  # keep per-epoch weights and average the last N epochs into averaged.pt; 0 = off
    average_by: str = "last"  # "last": the last N epochs; "best": the N epochs with the lowest dev error
    tensorboard: bool | str = "auto"  # event files in EXP/tensorboard/: true, false, auto (when tensorboard imports)
    device: str = "auto"  # auto (CUDA when available), cpu or cuda; under torchrun: the GPU of LOCAL_RANK
    precision: str = "fp32"  # fp32, bf16 (autocast) or fp16 (autocast + GradScaler, CUDA only); CTC stays fp32
    # Transducer (model.head: transducer) only:
    init_encoder_from: str = ""  # a trained CTC experiment (folder or checkpoint): its encoder is copied first
    pretrain_prediction: bool = False  # first train the prediction network as a next-label LM on the transcripts
    prediction_lm_epochs: int = 10  # ... for at most this many epochs (the best dev perplexity is kept)
    prediction_lm_lr: float = 1.0e-3  # ... with Adam at this learning rate
    prediction_lm_text: str = ""  # ... on these extra transcripts too (one per line, the model's units)
    joint_budget_mb: float = 1024.0  # memory for the joint network's lattice per step (larger batches in groups)
    # Start from all weights of a trained experiment (folder or checkpoint; CTC or transducer, the same head): the
    # token-indexed output weights are rebuilt when the inventories differ (rows of shared tokens copied); an
    # encoder of another shape is an error. --resume takes precedence (a resumed run is not re-initialised).
    init_from: str = ""
    # Drop from training every utterance whose normalised transcript equals that of a dev or test utterance of
    # any corpus of the recipe (counted): "auto" = on for multi-corpus recipes (corpora:), off for corpus:.
    exclude_eval_sentences: bool | str = "auto"


@dataclass
class AugmentSection:
    """Waveform augmentation of the training utterances (lstm_asr/data/augment.py); off unless a key turns it on.

    With any of it on, training computes each batch's features from the augmented waveforms (the stored features
    still give the normalisation statistics, dev and test). Every draw is seeded by (training.seed, epoch,
    utterance), so a run is reproducible and a resumed run sees exactly the same augmented audio.
    """

    speed: list[float] = field(default_factory=lambda: [1.0])  # Ko et al. 2015 (Kaldi): [0.9, 1.0, 1.1]
    noise_prob: float = 0.0  # share of utterances that get additive noise ...
    noise_snr: list[float] = field(default_factory=lambda: [10.0, 30.0])  # ... at an SNR (dB) drawn from this range
    noise_dir: str = ""  # folder of noise recordings (any format soundfile reads); "" = generated coloured noise
    noise_color: list[float] = field(default_factory=lambda: [0.0, 2.0])  # generated noise: 1/f^beta, beta range
    reverb_prob: float = 0.0  # share of utterances convolved with a room impulse response ...
    rir_dir: str = ""  # ... read from this folder, or "" = simulated rooms (pyroomacoustics, the augment extra)
    rir_count: int = 48  # simulated rooms (generated once, cached beside the features)
    rir_rt60: list[float] = field(default_factory=lambda: [0.2, 0.6])  # their reverberation times, seconds
    telephone_prob: float = 0.0  # share band-limited to the telephone band (300-3400 Hz via 8 kHz)
    gain_prob: float = 0.0  # share scaled by a gain (dB) drawn from gain_db
    gain_db: list[float] = field(default_factory=lambda: [-10.0, 6.0])  # ... its range; the result clipped to [-1, 1]


@dataclass
class DecodingSection:
    beam: int = 1  # 1 = greedy
    token_top_k: int = 0  # per-frame token pruning in beam search; 0 = off
    max_symbols: int = 4  # transducer: labels emitted per encoder frame at most (greedy and beam search)
    # Language model decoding (flashlight, needs the ``lm`` extra). lm: ARPA file (``lstm-asr lm build``);
    # lexicon: ``word tok tok ...`` file for word decoding (empty = lexicon-free: the LM is over the tokens).
    lm: str = ""
    lexicon: str = ""  # see lm above
    lm_weight: float = 1.0  # multiplies the LM's log10 probabilities
    word_score: float = 0.0  # added per word (lexicon) or per token (lexicon-free); negative = fewer insertions


@dataclass
class Recipe:
    """A whole recipe. ``source`` is the file it came from (for messages); ``name`` names the experiment."""

    name: str = ""
    description: str = ""
    corpus: CorpusSection = field(default_factory=CorpusSection)
    corpora: list[CorpusEntry] = field(default_factory=list)  # several corpora instead of corpus: (union)
    features: FeaturesSection = field(default_factory=FeaturesSection)
    model: ModelSection = field(default_factory=ModelSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    decoding: DecodingSection = field(default_factory=DecodingSection)
    augment: AugmentSection = field(default_factory=AugmentSection)
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form: paper, reported figures, notes

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML-serialisable) of the whole recipe, defaults included."""
        return dataclasses.asdict(self)


CHOICES: dict[str, tuple[str, ...]] = {
    "corpus.type": ("timit", "kaldi_dir", "librispeech", "manifest", "lhotse", "hf", "ondb", "arctic", "audio_folder",
                    "speechocean762", "unipen"),
    "corpus.split_by": ("sentence", "speaker", "speaker_sentence"),
    "corpus.word_fallback": ("espeak", "none"),
    "corpus.unipen.language": ("", "en", "other"),
    "corpus.unipen.charset": ("", "ascii"),
    "corpus.units": ("", "phones", "chars", "bpe"),
    "corpus.generate.kind": ("timit", "ondb"),
    "features.type": ("fbank", "ink"),
    "features.normalize": ("global", "utterance", "speaker"),
    "model.init": ("default", "uniform"),
    "model.cell": ("lstm", "peephole", "gru", "nig", "nfg", "nog", "niaf", "noaf", "np", "cifg", "fgr", "lstm1997",
                   "convlstm", "lmu"),
    "model.head": ("ctc", "transducer"),
    "model.peephole_output_activation": ("tanh", "identity"),
    "training.optimizer": ("adam", "sgd"),
    "training.loss_reduction": ("mean", "sum"),
    "training.momentum_per": ("batch", "utterance"),
    "training.schedule": ("constant", "newbob", "cosine"),
    "training.device": ("auto", "cpu", "cuda"),
    "training.precision": ("fp32", "bf16", "fp16"),
    "training.average_by": ("last", "best"),
}

POSITIVE = {"features.num_mel_bins", "model.hidden", "model.layers", "model.stack_frames", "model.subsample",
            "model.conv_channels", "model.conv_kernel", "model.lmu_order", "model.lmu_theta", "model.lmu_memories",
            "training.max_epochs",
            "training.max_frames", "training.max_batch", "training.log_every", "decoding.beam",
            "training.max_bad_steps",
            "training.lr", "features.frame_length_ms", "features.frame_shift_ms", "corpus.generate.minutes",
            "corpus.bpe_vocab_size", "corpus.generate.lines", "augment.rir_count",
            "model.pred_hidden", "model.pred_layers", "model.joint_dim", "training.prediction_lm_epochs",
            "training.prediction_lm_lr", "training.joint_budget_mb", "decoding.max_symbols"}
NON_NEGATIVE = {"features.deltas", "model.dropout", "training.momentum", "training.weight_decay",
                "training.patience", "training.grad_clip", "training.threads", "training.max_minutes",
                "training.checkpoint_every", "training.weight_noise", "training.noise_max_epochs",
                "training.spec_time_masks", "training.spec_time_width", "training.spec_freq_masks",
                "training.spec_freq_width", "training.newbob_factor", "training.average_last",
                "decoding.token_top_k", "model.init_scale", "model.projection", "model.pyramid", "decoding.lm_weight",
                "model.chunk_frames", "model.right_context", "model.conv_layers",
                "model.pred_embedding", "model.pred_context",
                "corpus.dev_share", "corpus.test_share", "features.ink_spacing", "corpus.unipen.dev_fraction",
                "corpus.unipen.test_fraction", "corpus.unipen.lines_from_words", "corpus.unipen.line_words_min"}


STREAMABLE_CELLS = ("lstm", "gru")  # cells with latency-controlled (chunked) and unidirectional layers


def latency_control_problem(cell: str, bidirectional: bool, chunk_frames: int, right_context: int,
                            reduction: int) -> tuple[str, str] | None:
    """What is wrong with the chunking keys, as (recipe key, problem), or None. Shared by the model config and
    the recipe check (which names the recipe file)."""
    if chunk_frames < 0 or right_context < 0:
        return ("model.chunk_frames" if chunk_frames < 0 else "model.right_context"), "must be >= 0"
    if (chunk_frames or not bidirectional) and cell not in STREAMABLE_CELLS:
        key = "model.chunk_frames" if chunk_frames else "model.bidirectional"
        return key, (f"latency-controlled and unidirectional layers exist for model.cell "
                     f"{' and '.join(STREAMABLE_CELLS)}, not {cell!r} (set model.cell: lstm, or train it "
                     "whole-utterance and bidirectional)")
    if right_context and not chunk_frames:
        return "model.right_context", "needs model.chunk_frames > 0 (the look-ahead belongs to each chunk)"
    if right_context and not bidirectional:
        return "model.right_context", ("a unidirectional model (model.bidirectional: false) has no backward "
                                       "direction to look ahead with; set it to 0")
    for key, value in (("model.chunk_frames", chunk_frames), ("model.right_context", right_context)):
        if value % reduction:
            low, high = value // reduction * reduction, (value // reduction + 1) * reduction
            options = f"{low} or {high}" if low else str(high)
            return key, (f"{value} is not a multiple of the frame-rate reduction {reduction} (model.subsample x "
                         f"2^model.pyramid), so chunks would split network frames; use {options}")
    return None


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


_MAX_INT = 2**63 - 1
_MAX_METADATA_VALUES = 100_000
_MAX_METADATA_DEPTH = 50


def _show(value: Any, limit: int = 60) -> str:
    """``repr`` for messages: shortened, and safe for integers too long to print (``str`` refuses > 4300 digits)."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__} too large to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain_data(value: dict, key_path: str, source: str) -> dict:
    """Free-form data (``metadata``) as plain values: strings, numbers, booleans, None, lists and mappings.

    Checkpoints store the recipe and are loaded with ``weights_only``, which refuses the dates and sets YAML can
    produce (so ``date: 2024-05-01`` becomes the string ``"2024-05-01"``). YAML aliases can build a
    self-referencing or exponentially large structure (a "billion laughs") that would hang or exhaust memory when
    the recipe is copied or saved: both are refused by a bound on the values visited and the nesting depth.
    """
    budget = [_MAX_METADATA_VALUES]

    def too_big() -> RecipeError:
        return RecipeError(source, key_path, f"too large or nested too deeply (at most {_MAX_METADATA_VALUES} "
                                             f"values and {_MAX_METADATA_DEPTH} levels, YAML aliases expanded)")

    def scalar(v: Any, where: str) -> Any:
        if v is None or isinstance(v, bool | str | float):
            return v
        if isinstance(v, int):
            if abs(v) > _MAX_INT:
                raise RecipeError(source, where, f"integer out of range (at most {_MAX_INT} in magnitude)")
            return v
        if isinstance(v, datetime.date):  # datetime.datetime too
            return v.isoformat()
        raise RecipeError(source, where, f"unsupported value {_show(v)} (use strings, numbers, lists, mappings)")

    def convert(v: Any, where: str, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > _MAX_METADATA_DEPTH:
            raise too_big()
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                k = scalar(k, where)
                out[k] = convert(x, f"{where}.{_show(k) if not isinstance(k, str) else k}", depth + 1)
            return out
        if isinstance(v, list | tuple | set | frozenset):
            items = [convert(x, where, depth + 1) for x in v]
            # A set has no order; sort it so the recipe (compared on --resume) is the same on every run.
            return sorted(items, key=lambda x: (type(x).__name__, str(x))) if isinstance(v, set | frozenset) else items
        return scalar(v, where)

    return convert(value, key_path, 0)


def _build(cls: type, data: Any, path: str, source: str) -> Any:
    """Build dataclass ``cls`` from ``data``, checking keys and types recursively."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(source, path or "<top>", f"expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        key_text = key if isinstance(key, str) else _show(key)
        key_path = f"{path}.{key_text}" if path else key_text
        if key not in names:
            close = difflib.get_close_matches(key_text, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(names)})"
            raise RecipeError(source, key_path, f"unknown key{hint}")
        kwargs[key] = _convert(hints[key], value, key_path, source)
    return cls(**kwargs)


def _convert(tp: Any, value: Any, key_path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for arg in args[:-1]:  # e.g. bool | str: the first type that takes the value
            try:
                return _convert(arg, value, key_path, source)
            except RecipeError:
                pass
        return _convert(args[-1], value, key_path, source)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key_path, source)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            value = [value]  # a single number stands for a one-element list (augment.speed: 1.1)
        return [_convert(item, v, f"{key_path}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(source, key_path, f"expected a mapping, got {_show(value)}")
        return _plain_data(value, key_path, source)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecipeError(source, key_path, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(source, key_path, f"expected an integer, got {_show(value)}")
        if abs(value) > _MAX_INT:  # also keeps huge values out of messages (str() of a 5000-digit int fails)
            raise RecipeError(source, key_path, f"integer out of range (at most {_MAX_INT} in magnitude)")
        return value
    if tp is float:
        # YAML reads "1e-3" as a string (YAML 1.1); accept numeric strings for floats only.
        number = None
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if not isinstance(value, int) or abs(value) <= _MAX_INT else math.inf
        if number is None:
            raise RecipeError(source, key_path, f"expected a number, got {_show(value)}")
        if not math.isfinite(number):  # nan would pass every "> 0" check and poison training
            raise RecipeError(source, key_path, f"expected a finite number, got {_show(value)}")
        return number
    if tp is str:
        if not isinstance(value, str):
            raise RecipeError(source, key_path, f"expected a string, got {_show(value)}")
        return value
    raise RecipeError(source, key_path, f"unsupported type {_type_name(tp)}")


def _check_values(recipe: Recipe, source: str) -> None:
    def get(dotted: str) -> Any:
        obj: Any = recipe
        for part in dotted.split("."):
            if obj is None:
                return None
            obj = getattr(obj, part)
        return obj

    for key, allowed in CHOICES.items():
        value = get(key)
        if value is not None and value not in allowed:
            raise RecipeError(source, key, f"{value!r} is not one of {', '.join(allowed)}")
    for key in POSITIVE:
        value = get(key)
        if value is not None and value <= 0:
            raise RecipeError(source, key, f"must be > 0, got {value!r}")
    for key in NON_NEGATIVE:
        value = get(key)
        if value is not None and value < 0:
            raise RecipeError(source, key, f"must be >= 0, got {value!r}")
    if recipe.model.dropout >= 1:
        raise RecipeError(source, "model.dropout", f"must be < 1, got {recipe.model.dropout}")
    if recipe.training.precision == "fp16" and recipe.training.device == "cpu":
        raise RecipeError(source, "training.precision", "fp16 needs training.device cuda or auto (use bf16 on CPU)")
    if recipe.model.projection and recipe.model.cell != "lstm":
        raise RecipeError(source, "model.projection", f"a projection needs cell lstm, not {recipe.model.cell!r}")
    if recipe.model.projection >= recipe.model.hidden:
        raise RecipeError(source, "model.projection", f"must be smaller than model.hidden ({recipe.model.hidden})")
    if recipe.model.pyramid >= recipe.model.layers:
        raise RecipeError(source, "model.pyramid", f"must be below model.layers ({recipe.model.layers})")
    _check_augment(recipe.augment, source)
    m = recipe.model
    problem = latency_control_problem(m.cell, m.bidirectional, m.chunk_frames, m.right_context,
                                      m.subsample * 2**m.pyramid)
    if problem is not None:
        raise RecipeError(source, *problem)
    _check_conv(recipe, source)
    if recipe.training.momentum_per == "utterance" and (recipe.training.optimizer != "sgd"
                                                        or recipe.training.loss_reduction != "sum"):
        raise RecipeError(source, "training.momentum_per", "utterance needs training.optimizer: sgd and "
                          "training.loss_reduction: sum (the batch stands for its utterances' SGD steps)")
    if recipe.model.head != "transducer":
        for key in ("init_encoder_from", "pretrain_prediction", "prediction_lm_text"):
            if getattr(recipe.training, key):
                raise RecipeError(source, f"training.{key}", "is for transducer models (set model.head: transducer)")
    if recipe.features.deltas > 2:
        raise RecipeError(source, "features.deltas", "must be 0, 1 or 2")
    if recipe.training.tensorboard not in (True, False, "auto"):
        raise RecipeError(source, "training.tensorboard", f"expected true, false or auto, got "
                          f"{recipe.training.tensorboard!r}")
    if recipe.training.exclude_eval_sentences not in (True, False, "auto"):
        raise RecipeError(source, "training.exclude_eval_sentences", f"expected true, false or auto, got "
                          f"{recipe.training.exclude_eval_sentences!r}")
    if recipe.training.init_from:
        for key in ("init_encoder_from", "pretrain_prediction"):
            if getattr(recipe.training, key):
                raise RecipeError(source, f"training.{key}", "cannot be combined with training.init_from (which "
                                  "already gives every weight)")
    if recipe.features.normalize != "global" and recipe.features.type != "fbank":
        raise RecipeError(source, "features.normalize", f"{recipe.features.normalize} normalisation is for speech "
                          f"(features.type fbank), not {recipe.features.type!r}")
    if recipe.corpora:
        _check_corpora(recipe, source)
    elif recipe.corpus.dev_share + recipe.corpus.test_share >= 1:
        raise RecipeError(source, "corpus.test_share", "corpus.dev_share + corpus.test_share must be below 1")
    elif not recipe.corpus.path:
        raise RecipeError(source, "corpus.path", "is required (set it in the recipe or with --set corpus.path=DIR)")
    # These name folders lstm-asr writes (exp/<name>, <feature store>/<split>): they must stay inside them.
    keys = ("name",) if recipe.corpora else ("name", "corpus.train_split", "corpus.dev_split", "corpus.test_split")
    for key in keys:
        value = get(key)
        if (value or key != "name") and (problem := name_problem(value)) is not None:
            raise RecipeError(source, key, f"{_show(value)} {problem}: it names a folder that must stay inside the "
                              "experiments or feature-store folder")


def _check_corpora(recipe: Recipe, source: str) -> None:
    """The ``corpora:`` list of a multi-corpus recipe: named, typed, with paths, and with something to train, select
    and test on; weights all given or all left out (one-line errors naming ``corpora[i].key``)."""
    if recipe.corpus != CorpusSection():
        raise RecipeError(source, "corpus", "give either corpus: (one corpus) or corpora: (several), not both")
    seen: set[str] = set()
    for i, e in enumerate(recipe.corpora):
        where = f"corpora[{i}]"
        if not e.name:
            raise RecipeError(source, f"{where}.name", "is required (it names the corpus in the results)")
        if (problem := name_problem(e.name)) is not None:
            raise RecipeError(source, f"{where}.name", f"{_show(e.name)} {problem}: it names a feature-store folder")
        if e.name in seen:
            raise RecipeError(source, f"{where}.name", f"{e.name!r} is used twice; each corpus needs its own name")
        seen.add(e.name)
        for key, allowed in (("type", CHOICES["corpus.type"]), ("units", CHOICES["corpus.units"])):
            if getattr(e, key) not in allowed:
                raise RecipeError(source, f"{where}.{key}", f"{getattr(e, key)!r} is not one of {', '.join(allowed)}")
        if e.generate is not None:
            if e.generate.kind not in CHOICES["corpus.generate.kind"]:
                raise RecipeError(source, f"{where}.generate.kind", f"{e.generate.kind!r} is not one of "
                                  f"{', '.join(CHOICES['corpus.generate.kind'])}")
            for key in ("minutes", "lines"):
                if getattr(e.generate, key) <= 0:
                    raise RecipeError(source, f"{where}.generate.{key}", "must be > 0")
        if not e.path:
            raise RecipeError(source, f"{where}.path", "is required")
        if e.weight < 0:
            raise RecipeError(source, f"{where}.weight", f"must be >= 0, got {e.weight!r}")
        if e.dev_share + e.test_share >= 1:
            raise RecipeError(source, f"{where}.test_share", "dev_share + test_share must be below 1")
        if e.bpe_vocab_size <= 0:
            raise RecipeError(source, f"{where}.bpe_vocab_size", "must be > 0")
        for key in ("train_split", "dev_split", "test_split"):
            value = getattr(e, key)
            if value and (problem := name_problem(value)) is not None:
                raise RecipeError(source, f"{where}.{key}", f"{_show(value)} {problem}: it names a feature-store "
                                  "folder")
        if e.weight > 0 and not e.train_split:
            raise RecipeError(source, f"{where}.weight", "a corpus without train_split is not sampled for training")
    training = [e for e in recipe.corpora if e.train_split]
    for key, what in (("train_split", "train on"), ("dev_split", "select the model on"), ("test_split", "test on")):
        if not any(getattr(e, key) for e in recipe.corpora):
            raise RecipeError(source, "corpora", f"no corpus gives a {key} to {what}")
    weighted = [e.weight > 0 for e in training]
    if any(weighted) and not all(weighted):
        i = recipe.corpora.index(training[weighted.index(False)])
        raise RecipeError(source, f"corpora[{i}].weight", "give every training corpus a weight > 0, or none (then "
                          "each utterance is trained on once per epoch)")


def corpora_of(recipe: Recipe) -> list[CorpusEntry]:
    """The recipe's corpora: its ``corpora:`` list, or its one ``corpus:`` section as an entry named ""."""
    if recipe.corpora:
        return list(recipe.corpora)
    # A shallow copy of the fields: dataclasses.asdict would also turn nested sections (``unipen:``) into dicts,
    # which the readers do not read as sections (a single-corpus UNIPEN recipe then lost its salt and selection).
    c = recipe.corpus
    return [CorpusEntry(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})]


def primary_corpus(recipe: Recipe) -> CorpusEntry:
    """The corpus whose type and units a model's checkpoint records (scoring conventions of decoding): the
    ``corpus:`` section (as corpora_of's entry named ""), or the first training corpus of ``corpora:``.

    Always a named entry of corpora_of, so callers look its scoring mapping up by ``.name`` either way.
    """
    if not recipe.corpora:
        return corpora_of(recipe)[0]
    return next(e for e in recipe.corpora if e.train_split)


def _check_augment(a: AugmentSection, source: str) -> None:
    """Ranges and probabilities of the augment section that make sense (one-line errors naming the key)."""
    for key in ("noise_prob", "reverb_prob", "telephone_prob", "gain_prob"):
        if not 0 <= getattr(a, key) <= 1:
            raise RecipeError(source, f"augment.{key}", f"a probability must be in [0, 1], got {getattr(a, key)!r}")
    if not a.speed:
        raise RecipeError(source, "augment.speed", "needs at least one factor (1.0 = unchanged)")
    for f in a.speed:
        if not 0.5 <= f <= 2.0:
            raise RecipeError(source, "augment.speed", f"speed factors must be in [0.5, 2] (Kaldi: 0.9, 1.0, 1.1), "
                              f"got {f!r}")
    ranges = {"noise_snr": (-20.0, 100.0), "noise_color": (-2.0, 3.0), "rir_rt60": (0.05, 3.0),
              "gain_db": (-60.0, 40.0)}
    for key, (lo, hi) in ranges.items():
        r = getattr(a, key)
        if len(r) != 2 or r[0] > r[1]:
            raise RecipeError(source, f"augment.{key}", f"expected a range [low, high] with low <= high, got {r!r}")
        if r[0] < lo or r[1] > hi:
            raise RecipeError(source, f"augment.{key}", f"must lie within [{lo:g}, {hi:g}], got {r!r}")


def _check_conv(recipe: Recipe, source: str) -> None:
    """ConvLSTM layers (model.cell convlstm, model.conv_layers) convolve along the frequency bins of fbank frames."""
    m, feats = recipe.model, recipe.features
    if m.cell != "convlstm" and m.conv_layers >= m.layers:
        raise RecipeError(source, "model.conv_layers", f"must be below model.layers ({m.layers}); for ConvLSTM "
                          "layers only, use model.cell: convlstm")
    if m.cell != "convlstm" and m.conv_layers == 0:
        return
    key = "model.cell" if m.cell == "convlstm" else "model.conv_layers"
    if feats.type != "fbank":
        raise RecipeError(source, key, f"ConvLSTM layers convolve along frequency and need features.type fbank, not "
                          f"{feats.type!r}")
    bins = feats.num_mel_bins + int(feats.use_energy)
    if m.conv_kernel % 2 == 0:
        raise RecipeError(source, "model.conv_kernel", f"must be odd (a kernel centred on each bin), got "
                          f"{m.conv_kernel}")
    if m.conv_kernel > bins:
        raise RecipeError(source, "model.conv_kernel", f"{m.conv_kernel} is larger than the {bins} frequency bins "
                          "of the features (features.num_mel_bins + energy)")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value`` into its key path and a YAML-parsed value."""
    if "=" not in text:
        raise RecipeError("--set", text, "expected key.path=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise RecipeError("--set", text, "empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or _first_line(exc)  # a ReaderError has no .problem
        raise RecipeError("--set", key, f"value is not valid YAML: {problem}") from None
    except _YAML_VALUE_ERRORS as exc:
        raise RecipeError("--set", key, f"value is not valid YAML: {_first_line(exc)}") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to raw recipe data (validation happens afterwards, on the result)."""
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError("--set", ".".join(parts), f"'{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def recipe_from_dict(data: Any, source: str = "<recipe>", overrides: list[str] | None = None) -> Recipe:
    """Validate raw data (after applying overrides) and return a :class:`Recipe`."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(source, "<top>", "a recipe must be a YAML mapping")
    data = apply_overrides(dict(data), overrides or [])
    recipe = _build(Recipe, data, "", source)
    _check_values(recipe, source)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read and validate a recipe file (safe YAML loader), applying ``--set`` overrides."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(path, "", "recipe file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(path, "", f"cannot read recipe: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or _first_line(exc)  # a ReaderError has no .problem
        raise RecipeError(path, "", f"{where}invalid YAML ({problem})") from None
    except _YAML_VALUE_ERRORS as exc:
        raise RecipeError(path, "", f"invalid YAML ({_first_line(exc)})") from None
    recipe = recipe_from_dict(data, str(path), overrides)
    if not recipe.name:
        recipe.name = f"{path.parent.name}_{path.stem}" if path.parent.name else path.stem
        if (problem := name_problem(recipe.name)) is not None:  # e.g. a file named "...yaml" gives ".."
            raise RecipeError(path, "name", f"the name taken from the file name, {recipe.name!r}, {problem}; set "
                              "name: in the recipe")
    return recipe


# PyYAML's safe constructors raise these (not YAMLError) for e.g. a date that does not exist (2021-02-30), an
# integer of more than 4300 digits or ``!!float x``; nesting deeper than Python's recursion limit is RecursionError.
_YAML_VALUE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0][:120] if lines else "") or type(exc).__name__


def dump_recipe(recipe: Recipe) -> str:
    """YAML text of the recipe as run (defaults filled in)."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)
