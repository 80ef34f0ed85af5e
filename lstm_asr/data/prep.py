"""``lstm-asr prep``: turn a corpus into stored feature and label sequences, once.

Each split is featurised in parallel worker processes and written as contiguous arrays (``feature_store``). A
fingerprint of the corpus listing (paths, sizes, modification times, labels), the feature settings and the token
inventory is kept with every split, so ``train`` can tell when the store is missing or stale and re-run prep itself.
Work is saved in shards as it goes (``prep_shards``), so a killed prep resumes where it stopped.
Bad utterances are skipped and counted, never silently dropped: unreadable audio, bad label files, and utterances
whose labels CTC cannot fit into their frames. A training utterance with a symbol outside the token inventory (for
units fitted on the training text: one no training line has) is skipped too; a dev or test utterance with one is
kept, its reference intact (the stored label ids leave the unknown symbols out), and scored: those symbols are
errors no model can avoid, and the split's summary and the scores say how many utterances hold them.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_prep.audio import resampled
from data_prep.corpora import open_source
from data_prep.ink import Ink
from data_prep.sources import CorpusItem, RawInput, Waveform
from lstm_asr.atomic_file import write_atomically
from lstm_asr.data.ctc_feasibility import ctc_min_frames
from lstm_asr.data.feature_store import FeatureSplit, SplitWriter
from lstm_asr.data.features import FeatureConfig, compute_features
from lstm_asr.data.ink_features import InkFeatureConfig, featurize_ink
from lstm_asr.data.prep_shards import DEFAULT_SHARD_SIZE, Shard, ShardStore
from lstm_asr.data.tokens import TokenSet, describe_unknown, unknown_symbols
from lstm_asr.errors import CorpusError, LstmAsrError
from lstm_asr.recipe import CorpusSection, Recipe, corpora_of, primary_corpus

PREP_VERSION = 1


@dataclass
class SplitReport:
    """What prep did with one split."""

    split: str
    utterances: int = 0
    frames: int = 0
    speakers: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict[str, str] = field(default_factory=dict)  # reason -> first file with it
    reused: bool = False
    repaired: Counter = field(default_factory=Counter)  # input glitches fixed (kind -> count), e.g. pen data
    reused_shards: int = 0  # shards a previous, interrupted prep finished (lstm_asr/data/prep_shards.py)
    reused_items: int = 0  # the utterances in them (skipped ones included)
    featurized: int = 0  # utterances featurised by this run
    notes: dict[str, int] = field(default_factory=dict)  # the source's counts that are not skips (SplitItems.notes)
    unknown: dict = field(default_factory=dict)  # dev/test: references' symbols outside the inventory (tokens.py)

    @property
    def hours(self) -> float:
        return self.frames / 100.0 / 3600.0  # 10 ms frames

    def skip(self, path: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, path)

    def summary(self) -> str:
        head = f"{self.split}: {self.utterances} utterances, {self.hours:.2f} h"
        if self.speakers:
            head += f", {self.speakers} speakers"
        if self.reused:
            head += " (up to date, reused)"
        if self.reused_shards:
            head += (f"; resumed: reused {self.reused_shards} shards ({self.reused_items} utterances), "
                     f"featurized {self.featurized}")
        if self.repaired:
            head += "; repaired: " + ", ".join(f"{n} x {r}" for r, n in self.repaired.most_common())
        if self.notes:  # e.g. where a recorded corpus's words got their phones, and its out-of-lexicon words
            head += "; " + ", ".join(f"{what}: {n}" for what, n in self.notes.items())
        if self.unknown.get("symbols"):
            head += "; " + describe_unknown(self.unknown)
        if self.skipped:
            parts = [f"{n} x {r} (e.g. {self.examples[r]})" for r, n in self.skipped.most_common()]
            head += f"; skipped {sum(self.skipped.values())}: " + "; ".join(parts)
        return head


def feature_config(recipe: Recipe) -> FeatureConfig:
    f = recipe.features
    if f.type == "ink":  # pen strokes: a config of the same shape (to_dict, dim), see lstm_asr/data/ink_features.py
        return InkFeatureConfig(spacing=f.ink_spacing, deskew=f.ink_deskew, deslant=f.ink_deslant,
                                resolution=f.ink_resolution, arc_weighted=f.ink_arc_weighted, size=f.ink_size,
                                pen_up_time=f.ink_pen_up_time)
    return FeatureConfig(num_mel_bins=f.num_mel_bins, use_energy=f.use_energy, deltas=f.deltas,
                         frame_length_ms=f.frame_length_ms, frame_shift_ms=f.frame_shift_ms, normalize=f.normalize)


def store_dir(recipe: Recipe) -> Path:
    """Where the recipe's prepared features live (``features.store``, else beside the corpus). A multi-corpus
    recipe keeps one store per corpus (:func:`corpus_store_dir`); this is then ``features.store`` (or the first
    corpus's)."""
    if recipe.features.store:
        return Path(recipe.features.store)
    return corpus_store_dir(recipe, primary_corpus(recipe))


def corpus_store_dir(recipe: Recipe, corpus: CorpusSection) -> Path:
    """The feature store of one corpus of the recipe: beside the corpus folder (``<path>_features``, the store a
    single-corpus recipe of it uses too), or ``features.store/<name>`` in a multi-corpus recipe that sets it; an
    entry's own ``store`` first."""
    if getattr(corpus, "store", ""):
        return Path(corpus.store)
    if recipe.features.store:
        name = getattr(corpus, "name", "")
        return Path(recipe.features.store) / name if recipe.corpora and name else Path(recipe.features.store)
    path = Path(corpus.path)
    return path.parent / f"{path.name}_features"


def ensure_corpus(recipe: Recipe, progress: bool = True) -> Path:
    """Return the corpus folder, generating it first when the recipe says how and it is missing."""
    return ensure_corpus_folder(recipe.corpus, progress)


def ensure_corpus_folder(corpus: CorpusSection, progress: bool = True) -> Path:
    """The folder of one corpus section, generated first when its ``generate`` says how and it is missing."""
    root = Path(corpus.path)
    gen = corpus.generate
    if gen is None:
        return root
    if gen.kind == "ondb":
        from data_prep.synth_ondb import corpus_is_complete as ondb_complete
        from data_prep.synth_ondb import generate_ondb_corpus

        if not ondb_complete(root):
            print(f"Generating the ondb corpus ({gen.lines} lines, seed {gen.seed}) in {root} ...")
            print(generate_ondb_corpus(root, lines=gen.lines, seed=gen.seed, progress=progress))
        return root
    from data_prep.synth_timit import corpus_is_complete, generate_timit_corpus

    if not corpus_is_complete(root):
        print(f"Generating the {gen.kind} corpus ({gen.minutes:g} minutes, seed {gen.seed}) in {root} ...")
        summary = generate_timit_corpus(root, minutes=gen.minutes, seed=gen.seed, progress=progress)
        print(summary)
    return root


def _fingerprint(items: list[CorpusItem], cfg: FeatureConfig, tokens: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": PREP_VERSION, "features": cfg.to_dict(), "tokens": tokens}).encode())
    known = set(tokens)
    if any(s not in known for it in items for s in it.labels):  # only then, so that other stores stay valid
        h.update(b"unknown symbols: kept in scoring splits\n")  # older preps skipped those utterances
    for it in items:
        try:
            st = os.stat(it.path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        opts = it.audio_options()  # only when set, so stores of corpora without segments stay valid
        extra = f"\t{opts}" if opts else ""
        h.update(f"{it.utt_id}\t{it.path}\t{stamp}\t{' '.join(it.labels)}{extra}\n".encode())
    return h.hexdigest()


def _worker_init() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core does better than threads inside each


def featurize_input(raw: RawInput, cfg_dict: dict, path: str) -> np.ndarray | tuple[np.ndarray, dict[str, int]]:
    """Features of one item's raw input: speech resampled to the configured rate and turned into filterbanks,
    or pen strokes repaired, normalised and turned into per-point features (with the repairs, counted by prep)."""
    if cfg_dict.get("type") == "ink":
        if not isinstance(raw, Ink):
            raise LstmAsrError(f"{path}: features.type ink needs pen strokes, and this corpus holds audio")
        try:
            feats, ink = featurize_ink(raw, InkFeatureConfig.from_dict(cfg_dict))
        except CorpusError:
            raise
        except LstmAsrError as exc:
            raise CorpusError(path, str(exc)) from None
        return feats, dict(ink.repairs)
    if not isinstance(raw, Waveform):
        raise LstmAsrError(f"{path}: speech features need audio, and this corpus holds pen strokes "
                           "(set features.type: ink)")
    cfg = FeatureConfig(**cfg_dict)
    return compute_features(resampled(raw.samples, raw.rate, cfg.sample_rate), cfg).numpy()


def featurize(args: tuple[Callable, str, dict, dict]) -> tuple[np.ndarray | tuple | None, str]:
    """Worker: features of one input file, or (None, reason) when it cannot be read."""
    read, path, cfg_dict, opts = args  # read: the source's reader; opts: CorpusItem.audio_options()
    try:
        return featurize_input(read(path, **opts), cfg_dict, path), ""
    except LstmAsrError as exc:
        # Readers say "path: problem"; keep the problem only, the path is reported beside it.
        return None, str(exc).removeprefix(f"{path}: ")


def _keep_or_skip(shard: Shard, it: CorpusItem, feats: np.ndarray | tuple | None, err: str,
                  tokens: TokenSet, scoring_only: bool = False) -> None:
    """Record one featurised item in ``shard``: kept, or skipped with the reason (bad file, labels, CTC).

    ``scoring_only`` (dev, test): symbols outside the token set stay in the reference and out of the label ids."""
    if feats is None:
        shard.skip(str(it.path), err)
        return
    if isinstance(feats, tuple):  # (features, {repair: count}): glitches a reader fixed, counted
        feats, fixed = feats
        shard.repaired.update(fixed)
    labels = [s for s in it.labels if s in tokens] if scoring_only else it.labels
    try:
        ids = np.asarray(tokens.encode(labels), dtype=np.int32)
    except KeyError as exc:
        shard.skip(str(it.path), str(exc.args[0]))  # "symbol 'x' is not in the token set"
        return
    if not it.labels:
        shard.skip(str(it.path), "no labels")
        return
    if feats.shape[0] < ctc_min_frames(ids.tolist()):
        shard.skip(str(it.path), "CTC-infeasible: more labels than frames")
        return
    shard.add(it.utt_id, it.speaker, feats, ids, " ".join(it.labels))


# Tasks handed to the pool at a time. Pool.imap's feeder thread puts every task into a pipe at once; when the
# pipe is full it blocks, and if the caller then stops early (an error, Ctrl-C) Pool.terminate() waits for that
# thread forever. A window of tasks that fits the pipe keeps the feeder from ever blocking.
_POOL_WINDOW = 32


def _bounded_imap(pool: Any, args: list[tuple]) -> Iterator[Any]:
    """``pool.imap(featurize, args)`` in order, with at most :data:`_POOL_WINDOW` tasks in flight."""
    for start in range(0, len(args), _POOL_WINDOW):
        yield from pool.imap(featurize, args[start:start + _POOL_WINDOW], chunksize=4)


def prep_split(source, split: str, out: Path, cfg: FeatureConfig, tokens: TokenSet, jobs: int = 2,
               force: bool = False, progress: Callable | None = None,
               shard_size: int = DEFAULT_SHARD_SIZE, scoring_only: bool = False) -> SplitReport:
    """Featurise one split into ``out`` unless an up-to-date copy is there already.

    ``scoring_only``: a split that is never trained on (dev, test), whose utterances with symbols outside the
    token set are kept (see :func:`_keep_or_skip`); a training split skips them.

    The work is saved in shards of ``shard_size`` utterances as it goes; a run after an interrupted one reuses the
    finished, up-to-date shards and featurises only the rest (``report.reused_shards``, ``report.featurized``).
    """
    listing = source.split(split)
    items = listing.items
    if not items:
        raise LstmAsrError(f"{source.root}: split '{split}' has no usable utterances")
    cfg = cfg.raw() if isinstance(cfg, FeatureConfig) else cfg  # the store holds un-normalised features
    fp = _fingerprint(items, cfg, tokens.symbols)
    report = SplitReport(split, notes=dict(listing.notes))
    if not force and (out / "DONE").exists():
        try:
            done = FeatureSplit(out)
            if done.index.get("fingerprint") == fp:
                _add_texts(done, items)
                report.utterances, report.frames = len(done), int(done.num_frames.sum())
                report.speakers = len(set(done.speakers))
                report.skipped.update(done.index.get("skipped", {}))
                report.examples.update(done.index.get("skip_examples", {}))
                report.repaired.update(done.index.get("repaired", {}))
                report.unknown = unknown_symbols((r.split() for r in done.refs), tokens.symbols)
                report.reused = True
                ShardStore(out.with_name(out.name + ".shards")).clear()  # left if killed right after finishing
                return report
        except LstmAsrError:
            pass  # unreadable: rebuild it
    for path, reason in listing.skipped:
        report.skip(path, reason)
    # Work in shards of consecutive items, each durable on its own (lstm_asr/data/prep_shards.py): a killed prep
    # resumes from the shards it finished, and a shard that is stale (other items or settings) or damaged is redone.
    shards = ShardStore(out.with_name(out.name + ".shards"))
    if force:
        shards.clear()
    plan = [(s, min(s + max(1, shard_size), len(items))) for s in range(0, len(items), max(1, shard_size))]
    fps = {s: _fingerprint(items[s:e], cfg, tokens.symbols) for s, e in plan}
    shards.remove_others({s for s, _ in plan})
    todo = []
    for s, e in plan:
        if shards.load(s, e, fps[s], cfg.dim) is None:
            todo.append((s, e))
        else:
            report.reused_shards += 1
            report.reused_items += e - s
    if todo:
        args = [(type(source).read, str(it.path), cfg.to_dict(), it.audio_options())
                for s, e in todo for it in items[s:e]]
        ctx = mp.get_context("spawn")  # fork after torch has started threads can deadlock
        with ctx.Pool(max(1, jobs), initializer=_worker_init) as pool:
            results = _bounded_imap(pool, args)
            for s, e in todo:
                shard = Shard(s, e, fps[s], cfg.dim)
                for it in items[s:e]:
                    feats, err = next(results)
                    if progress:
                        progress()
                    _keep_or_skip(shard, it, feats, err, tokens, scoring_only)
                shards.write(shard)
                report.featurized += e - s
    # Concatenate the shards, in order, into the contiguous store; the report is replayed from their records so
    # that a resumed split reports (and stores) exactly what an uninterrupted one does.
    writer = SplitWriter(out, cfg.dim)
    for s, e in plan:
        shard = shards.load(s, e, fps[s], cfg.dim)
        if shard is None:
            raise LstmAsrError(f"{shards.path(s)}: prep shard vanished or was damaged while prep ran; run prep again")
        for entry in shard.entries:
            if "skip" in entry:
                report.skip(entry["skip"], entry["reason"])
        report.repaired.update(shard.repaired)
        for entry, feats, ids in shard.kept():
            writer.add(entry["id"], entry["speaker"], feats, ids, entry["ref"])
            report.utterances += 1
            report.frames += entry["frames"]
        if progress and (s, e) not in todo:
            for _ in range(e - s):
                progress()
    report.speakers = len(set(writer.speakers))
    report.unknown = unknown_symbols((r.split() for r in writer.refs), tokens.symbols)
    if report.utterances == 0:
        raise LstmAsrError(f"{source.root}: no utterance of split '{split}' could be prepared ({report.summary()})")
    texts = {it.utt_id: it.text for it in items if it.text}
    writer.close({"fingerprint": fp, "tokens": tokens.symbols, "features": cfg.to_dict(),
                  "skipped": dict(report.skipped), "skip_examples": report.examples,
                  "repaired": dict(report.repaired),
                  **({"texts": [texts.get(u, "") for u in writer.ids]} if texts else {})})
    shards.clear()
    return report


def _add_texts(done: FeatureSplit, items: list[CorpusItem]) -> None:
    """Give an up-to-date split stored before its reader gave word transcripts the texts (index.json only)."""
    texts = {it.utt_id: it.text for it in items if it.text}
    if not texts or "texts" in done.index:
        return
    done.index["texts"] = [texts.get(u, "") for u in done.ids]
    index = json.dumps(done.index).encode()
    try:  # best effort: a read-only store stays as it is (the sentence rule then compares labels)
        write_atomically(done.folder / "index.json", lambda f: f.write(index))
    except OSError:
        pass


def prep(recipe: Recipe, force: bool = False, jobs: int | None = None, show_progress: bool = True,
         shard_size: int = DEFAULT_SHARD_SIZE) -> list[SplitReport]:
    """Prepare the train, dev and test splits a recipe names (generating the corpus first if it says so); for a
    multi-corpus recipe, those of every corpus, each in its own store (reports named ``<corpus>/<split>``).

    Resumable: finished work is kept in shards of ``shard_size`` utterances (see :func:`prep_split`).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    cfg = feature_config(recipe)
    jobs = jobs or os.cpu_count() or 1
    reports = []
    with Progress(TextColumn("prep {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=not show_progress) as bar:
        for corpus in corpora_of(recipe):
            root = ensure_corpus_folder(corpus, progress=show_progress)
            source = open_source(corpus.type, root, corpus)
            tokens = TokenSet(source.tokens())
            out = corpus_store_dir(recipe, corpus)
            out.mkdir(parents=True, exist_ok=True)
            splits = dict.fromkeys(s for s in (corpus.train_split, corpus.dev_split, corpus.test_split) if s)
            for split in splits:
                label = f"{corpus.name}/{split}" if corpus.name else split
                task = bar.add_task(label, total=None)
                report = prep_split(source, split, out / split, cfg, tokens, jobs=jobs, force=force,
                                    progress=lambda t=task: bar.advance(t), shard_size=shard_size,
                                    scoring_only=split != corpus.train_split)
                report.split = label
                if not corpus.train_split:
                    # A corpus that is only tested has no inventory of its own (its reader saw no training text):
                    # the model's is the training corpora's union, and train/evaluate report what that lacks.
                    report.unknown = {}
                done = report.utterances + sum(report.skipped.values())
                bar.update(task, total=done, completed=done)
                reports.append(report)
    return reports


def load_splits(recipe: Recipe, show_progress: bool = True) -> dict[str, FeatureSplit]:
    """Run prep where needed (missing or stale) and open the prepared splits, normalised as ``features.normalize``
    says (:mod:`lstm_asr.data.split_views`). A multi-corpus recipe's are named ``<corpus>/<split>``."""
    from lstm_asr.data.split_views import normalized

    reports = prep(recipe, show_progress=show_progress)
    for r in reports:
        print(r.summary())
    out: dict[str, FeatureSplit] = {}
    for corpus in corpora_of(recipe):
        for split in (corpus.train_split, corpus.dev_split, corpus.test_split):
            if split:
                label = f"{corpus.name}/{split}" if corpus.name else split
                out[label] = normalized(FeatureSplit(corpus_store_dir(recipe, corpus) / split),
                                        recipe.features.normalize)
    return out
