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
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data_prep.corpora import resolve_units, score_units_for
from lstm_asr.data.batching import bucket_batches
from lstm_asr.data.corpus_mix import load_training_data
from lstm_asr.data.feature_store import FeatureSplit
from lstm_asr.data.features import Normalizer
from lstm_asr.data.prep import feature_config, store_dir
from lstm_asr.data.split_views import frame_blocks
from lstm_asr.data.wave_batches import training_batches
from lstm_asr.errors import LstmAsrError, reporting_write_errors
from lstm_asr.nn.checkpoint import load_checkpoint, save_checkpoint
from lstm_asr.nn.kernel_support import check_precision
from lstm_asr.nn.model import BLSTMEncoder, ModelConfig
from lstm_asr.nn.networks import is_transducer, network_for
from lstm_asr.recipe import Recipe, TrainingSection, dump_recipe, primary_corpus
from lstm_asr.recognition.split_decode import decode_split
from lstm_asr.scoring.error_rates import extra_rates, metric_name
from lstm_asr.scoring.evaluate import CONVENTIONS, per_speaker, score_split, write_decode_dir
from lstm_asr.training.averaging import keep_epoch, score_averaged
from lstm_asr.training.devices import MixedPrecision
from lstm_asr.training.distributed import Distributed, NullWriter, distributed_session
from lstm_asr.training.init_from import init_from
from lstm_asr.training.objective import batch_loss, trainable_mask
from lstm_asr.training.pretraining import init_encoder_from, lm_sentences, pretrain_prediction, read_lm_text
from lstm_asr.training.regularizers import spec_mask, weight_noise
from lstm_asr.training.resume import LoopState, check_resumable, rng_states, set_rng_states
from lstm_asr.training.schedules import next_lr, set_lr, utterance_paced
from lstm_asr.training.tensorboard_log import open_tensorboard


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def normalizer_from(split: FeatureSplit, chunk: int = 200_000) -> Normalizer:
    """Mean/variance of the training features, accumulated in float64 chunks (bounded memory); every corpus's
    frames of a multi-corpus recipe, each counted once."""
    total = torch.zeros(split.dim, dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    count = 0
    for block in frame_blocks(split, chunk):
        b = torch.from_numpy(block)
        total += b.sum(0)
        total_sq += (b * b).sum(0)
        count += b.shape[0]
    return Normalizer.from_stats(count, total, total_sq)


def build_model(recipe: Recipe, input_dim: int, num_classes: int) -> BLSTMEncoder:
    """The recipe's network: a BLSTM-CTC model, or a transducer (``model.head``) over the same encoder."""
    m, f = recipe.model, recipe.features
    uses_conv = m.cell == "convlstm" or m.conv_layers > 0
    # ConvLSTM layers see a frame as channels of frequency bins: the mel bins and the energy coefficient.
    freq_bins = f.num_mel_bins + int(f.use_energy) if uses_conv and f.type == "fbank" else 0
    cfg = ModelConfig(input_dim=input_dim, num_classes=num_classes, hidden=m.hidden, layers=m.layers,
                      dropout=m.dropout, init=m.init, init_scale=m.init_scale, cell=m.cell, projection=m.projection,
                      peephole_output_activation=m.peephole_output_activation, stack_frames=m.stack_frames,
                      subsample=m.subsample, pyramid=m.pyramid, bidirectional=m.bidirectional,
                      chunk_frames=m.chunk_frames, right_context=m.right_context, conv_layers=m.conv_layers,
                      conv_channels=m.conv_channels, conv_kernel=m.conv_kernel, freq_bins=freq_bins,
                      lmu_order=m.lmu_order, lmu_theta=m.lmu_theta, lmu_memories=m.lmu_memories, head=m.head,
                      pred_hidden=m.pred_hidden, pred_layers=m.pred_layers, pred_embedding=m.pred_embedding,
                      pred_context=m.pred_context, joint_dim=m.joint_dim)
    model = network_for(cfg)
    if is_transducer(model):
        model.joint_budget_mb = recipe.training.joint_budget_mb
    return model


def build_optimizer(recipe: Recipe, model: torch.nn.Module) -> torch.optim.Optimizer:
    t = recipe.training
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def model_checkpoint(model: BLSTMEncoder, recipe: Recipe, tokens: list[str], **extra: Any) -> dict[str, Any]:
    """Everything needed to decode with this model, and nothing that needs pickling."""
    return {
        "model_config": asdict(model.config),
        "features": feature_config(recipe).to_dict(),
        "tokens": tokens,
        "corpus_type": primary_corpus(recipe).type,
        "recipe": recipe.to_dict(),
        "state_dict": model.state_dict(),
        **extra,
    }


class MetricsLog:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed each time: a crash loses nothing), and forwards
    each record to TensorBoard event files in ``tensorboard/`` beside it when ``tensorboard`` says so (true, or auto
    with the package installed: lstm_asr/training/tensorboard_log.py)."""

    def __init__(self, path: Path, tensorboard: bool | str = False, metric: str = "PER") -> None:
        self.path = path
        self.board = open_tensorboard(path.parent / "tensorboard", tensorboard, metric, history=path)

    def write(self, **record: Any) -> None:
        record = {"time": round(time.time(), 3), **record}
        with reporting_write_errors(self.path, "training metrics"), open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.board is not None:
            self.board.write(record)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def stage_max_epochs(state: LoopState, t: TrainingSection) -> int:
    """Epochs the current stage may train: ``max_epochs``, or ``noise_max_epochs`` in the weight-noise stage."""
    return t.noise_max_epochs if state.stage == 2 and t.noise_max_epochs else t.max_epochs


def stage_finished(state: LoopState, t: TrainingSection) -> bool:
    """Whether the current stage has nothing left to train once the epoch before ``state.epoch`` is done: that was
    its last epoch, or its patience is spent (then weight noise starts stage 2, or training ends)."""
    return state.bad_epochs >= t.patience or state.epoch - state.stage_start >= stage_max_epochs(state, t)


def run_pretraining(recipe: Recipe, model: BLSTMEncoder, train_split: FeatureSplit, dev_split: FeatureSplit,
                    tokens: list[str], device: torch.device, log: Any) -> dict[str, Any]:
    """A transducer's pretraining steps (lstm_asr/training/pretraining.py); returns what ran, for the loop state
    and results.json."""
    t = recipe.training
    done: dict[str, Any] = {}
    if t.init_encoder_from:
        done["encoder"] = init_encoder_from(model, t.init_encoder_from, feature_config(recipe).to_dict())
        print(f"encoder initialised from {done['encoder']['from']} (epoch {done['encoder']['epoch']}, dev "
              f"{done['encoder']['dev_per']}%)")
    if t.pretrain_prediction:
        sentences = lm_sentences(train_split) + (read_lm_text(t.prediction_lm_text, tokens)
                                                  if t.prediction_lm_text else [])
        done["prediction_lm"] = pretrain_prediction(model, sentences, lm_sentences(dev_split), t.prediction_lm_epochs,
                                                    t.prediction_lm_lr, t.seed, device, log)
    return done


def set_aside_previous_run(out: Path) -> None:
    """A new run in a folder that holds an earlier one's logs: keep those as ``metrics.jsonl.1`` (``.2``, ...) and
    ``tensorboard.1`` instead of appending the new run to them (its checkpoints are replaced as it goes)."""
    for name in ("metrics.jsonl", "tensorboard", "epochs"):
        old = out / name
        if old.exists():
            k = 1
            while (out / f"{name}.{k}").exists():
                k += 1
            old.rename(out / f"{name}.{k}")
            print(f"{old}: from an earlier run, kept as {name}.{k}")


def train(recipe: Recipe, out: Path, show_progress: bool = True, resume: bool = False,
          force: bool = False) -> dict[str, Any]:
    """Train, keep the best model by dev PER, and score it on dev and test. Returns ``results.json``'s content.

    ``resume`` continues exactly from ``out/last.pt`` when there is one (see ``lstm_asr/training/resume.py``); ``force``
    accepts a recipe that differs from the checkpoint's.

    Under ``torchrun`` this is one process of a data-parallel run (``lstm_asr/training/distributed.py``); rank 0
    writes the experiment and every process returns its results. ``training.device``/``precision``:
    ``lstm_asr/training/devices.py``.
    """
    with distributed_session(recipe.training.device) as (dist, device):
        return _train(recipe, out, show_progress, resume, force, dist, device)


def _train(recipe: Recipe, out: Path, show_progress: bool, resume: bool, force: bool, dist: Distributed,
           device: torch.device) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    t = recipe.training
    show_progress = show_progress and dist.is_main
    amp = MixedPrecision(t.precision, device)
    torch.set_num_threads(t.threads or dist.default_threads())
    seed_everything(t.seed)
    c = primary_corpus(recipe)  # a multi-corpus recipe: the first training corpus (scoring of the pooled splits)
    # Rank 0 preps, once. One corpus, or the union of a corpora: list (lstm_asr/data/corpus_mix.py).
    data = dist.main_first(lambda: load_training_data(recipe, show_progress=show_progress))
    train_split, dev_split, test_split = data.train, data.dev, data.test
    tokens = data.tokens
    score_units = score_units_for(c.type, c.units)
    metric = metric_name(c.type, c.units)  # PER for phones, CER for handwriting (lstm_asr/scoring/error_rates.py)

    last_path = out / "last.pt"
    if dist.is_main:  # only rank 0 writes the experiment
        with reporting_write_errors(out, "the experiment folder"):
            out.mkdir(parents=True, exist_ok=True)
            if not (resume and last_path.exists()):
                set_aside_previous_run(out)
    log = MetricsLog(out / "metrics.jsonl", t.tensorboard, metric) if dist.is_main else NullWriter()
    model = build_model(recipe, train_split.dim, len(tokens))
    if recipe.features.normalize == "global":  # else the splits come normalised, and the model's stays identity
        model.normalizer.load_state_dict(normalizer_from(train_split).state_dict())
    model.to(device)
    check_precision(model, t.precision, device)  # a one-line error where this CPU/GPU lacks the kernels
    optimizer = build_optimizer(recipe, model)
    state = LoopState(lr=t.lr)
    # Rank 0 reads the checkpoint and hands it to the others (multi-node runs need no shared experiment folder).
    ckpt = dist.from_main(lambda: load_checkpoint(last_path) if resume and last_path.exists() else None)
    if ckpt is not None:
        check_resumable(ckpt, recipe.to_dict(), asdict(model.config), last_path, force)
        dist.check_resume(ckpt, last_path)
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        amp.load_state_dict(ckpt.get("scaler"))
        state = LoopState.from_dict(ckpt["loop"])
        set_rng_states(ckpt["rng"])
        own = dist.own_state(ckpt)
        if own is not None:  # this process's own random states and loss sums
            set_rng_states(own["rng"])
            state.epoch_loss, state.epoch_utts, state.epoch_frames = own["sums"]
        print(f"resuming from {last_path}: epoch {state.epoch}, batch {state.step}")
        # Finished with epochs left in its stage: only its time budget stopped it, and a bigger one continues it.
        if state.done and not stage_finished(state, t) and (t.max_minutes <= 0 or state.elapsed < t.max_minutes * 60):
            state.done = False
            print(f"continuing: the run had used its time budget ({state.elapsed / 60:.1f} minutes); "
                  f"training.max_minutes is now {t.max_minutes:g}" + (" (no limit)" if t.max_minutes <= 0 else ""))
    elif resume and not t.init_from:
        print(f"no {last_path} yet: starting from scratch")
    if ckpt is None and t.init_from:  # --resume with a last.pt continues it instead: never initialised twice
        state.pretraining = {"init_from": dist.from_main(lambda: init_from(model, t.init_from,
                                                                            feature_config(recipe).to_dict(),
                                                                            tokens))}
        done = state.pretraining["init_from"]
        print(f"initialised from {done['from']} (epoch {done['epoch']}, dev {done['dev_per']}%); output layer "
              f"{done['output']}")
    if dist.is_main:
        with reporting_write_errors(out / "recipe.yaml", "the recipe as run"):
            (out / "recipe.yaml").write_text(dump_recipe(recipe))
    pretrained = ckpt is None and is_transducer(model) and bool(t.init_encoder_from or t.pretrain_prediction)
    if pretrained:  # on rank 0; wrapping the model below gives its weights to every process
        state.pretraining = dist.from_main(lambda: run_pretraining(recipe, model, train_split, dev_split, tokens,
                                                                   device, log))
    net = dist.wrap(model)  # DDP when distributed: gradients averaged over processes in backward()
    if dist.active and ckpt is None:  # a resumed process has its own generators back already
        seed_everything(dist.rank_seed(t.seed))
    params = model.num_parameters()
    mc = model.config
    prediction = (f"stateless, last {mc.pred_context} labels -> {mc.pred_hidden}" if mc.pred_context
                  else f"{mc.pred_layers}x{mc.pred_hidden}")
    head = f" + transducer (prediction {prediction}, joint {mc.joint_dim})" if is_transducer(model) else " + CTC"
    print(f"Model: {mc.layers}x{mc.hidden} BLSTM{head}, {params / 1e6:.2f}M weights, "
          f"{len(tokens)} outputs; train {len(train_split)} utterances, {train_split.num_frames.sum()} frames")
    # Frame-rate reduction (model.stack_frames/subsample/pyramid) can leave too few frames for an utterance's
    # labels: those are skipped, and counted, here (prep checked the full frame rate).
    feasible = trainable_mask(model, train_split)
    trainable = np.flatnonzero(feasible & data.keep_mask())
    if data.excluded is not None and data.excluded.any():
        counts = ", ".join(f"{n or 'train'}: {k}" for n, k in data.excluded_counts.items() if k)
        print(f"excluded {int(data.excluded.sum())} training utterances whose sentence is in a dev or test split "
              f"({counts})")
        if not trainable.size:
            raise LstmAsrError(f"{train_split.folder}: every training utterance's sentence is also a dev or test "
                               "sentence (training.exclude_eval_sentences)")
    head, why = ("transducer", "no output frame") if is_transducer(model) else ("CTC", "more labels than output frames")
    if feasible.sum() < len(train_split):
        if not feasible.any():
            raise LstmAsrError(f"{train_split.folder}: no training utterance keeps enough frames for {head} at 1/"
                               f"{model.frame_reduction} of the frame rate (reduce model.subsample or model.pyramid)")
        print(f"skipped {len(train_split) - int(feasible.sum())} of {len(train_split)} training utterances: "
              f"{head}-infeasible at 1/{model.frame_reduction} of the frame rate ({why})")

    # Stored features, or features computed from augmented audio when the recipe's augment section is on.
    source = training_batches(recipe, train_split, feature_config(recipe), model.output_lengths, store_dir(recipe))
    run_start, elapsed_before = time.time(), state.elapsed
    budget = t.max_minutes * 60 if t.max_minutes > 0 else math.inf

    def save_last() -> None:
        state.elapsed = elapsed_before + time.time() - run_start
        # Each process's generators and loss sums (collective: every process calls this at the same step).
        ranks = dist.rank_states({"rng": rng_states(),
                                  "sums": [state.epoch_loss, state.epoch_utts, state.epoch_frames]})
        if dist.is_main:
            save_checkpoint(model_checkpoint(model, recipe, tokens, epoch=state.epoch,
                                             optimizer=optimizer.state_dict(), loop=state.to_dict(), rng=rng_states(),
                                             scaler=amp.state_dict(), world_size=dist.world_size, **ranks), last_path)

    if pretrained:
        save_last()  # a resumed run starts after the pretraining

    columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[fps]:,.0f} frames/s"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress) as bar:
        while not state.done:
            epoch = state.epoch
            set_lr(optimizer, state.lr)
            # The epoch's utterances: each trainable one once, or drawn by the corpora's weights.
            drawn = data.epoch_indices(trainable, t.seed, epoch)
            batches = dist.shard([drawn[b] for b in bucket_batches(train_split.num_frames[drawn], t.max_frames,
                                                                   t.max_batch, seed=t.seed, epoch=epoch)])
            task = bar.add_task("train", total=len(batches), completed=state.step, epoch=epoch, loss=float("nan"),
                                fps=0.0)
            model.train()
            noise = t.weight_noise if state.stage == 2 else 0.0
            out_of_time = False
            epoch_start, frames_here = time.time(), 0
            for idx in batches[state.step:]:
                feats, lengths, targets, target_lengths = source.batch(idx, epoch)
                feats = spec_mask(feats, lengths, t.spec_time_masks, t.spec_time_width, t.spec_freq_masks,
                                  t.spec_freq_width)
                feats, dev_lengths, targets = feats.to(device), lengths.to(device), targets.to(device)
                optimizer.zero_grad(set_to_none=True)
                with weight_noise(model, noise):
                    with amp.autocast():  # bf16/fp16 forward; the CTC and transducer losses compute in float32
                        loss = batch_loss(net, model, feats, dev_lengths, targets, target_lengths)
                    # The step: the batch's mean utterance loss, or its sum (one step = its utterances' steps).
                    step_loss = loss * len(idx) if t.loss_reduction == "sum" else loss
                    finite = dist.all_true(bool(torch.isfinite(loss)))  # every process steps, or none does
                    if finite:
                        amp.backward(step_loss)
                        amp.unscale_(optimizer)  # clip true gradients, not scaled fp16 ones
                        # The norm is computed even without clipping: a non-finite gradient must be caught too.
                        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip or math.inf)
                        finite = bool(torch.isfinite(grad_norm))
                state.step += 1
                if finite:
                    if t.momentum_per == "utterance":  # this batch's step stands for its utterances' SGD steps
                        utterance_paced(optimizer, state.lr, t.momentum, len(idx))
                    amp.step(optimizer)
                    state.bad_streak = 0
                    state.epoch_loss += loss.item() * len(idx)
                    state.epoch_utts += len(idx)
                    state.epoch_frames += int(lengths.sum())
                    frames_here += int(lengths.sum())
                else:  # a non-finite loss or gradient must not reach the weights: skip the step, count it
                    state.skipped_steps += 1
                    if not amp.skip():  # an fp16 gradient overflow only lowers the loss scale: not a fault
                        state.bad_streak += 1
                    if state.bad_streak >= t.max_bad_steps:
                        raise LstmAsrError(
                            f"{out}: stopped after {state.bad_streak} consecutive steps with a non-finite loss or "
                            f"gradient (epoch {epoch}, batch {state.step}); {last_path} holds the last good state "
                            "(lower training.lr or set training.grad_clip, then train --resume --force)")
                fps = frames_here / max(time.time() - epoch_start, 1e-9)
                bar.update(task, advance=1, loss=state.epoch_loss / max(state.epoch_utts, 1), fps=fps)
                if state.step % t.log_every == 0 and finite:
                    log.write(kind="step", epoch=epoch, step=state.step, loss=round(loss.item(), 4),
                              frames_per_s=round(fps, 1))
                if t.checkpoint_every and state.step % t.checkpoint_every == 0 and state.step < len(batches):
                    save_last()
                if budget < math.inf and dist.any_true(elapsed_before + time.time() - run_start > budget):
                    out_of_time = True
                    break
            bar.update(task, visible=False)
            train_seconds = time.time() - epoch_start
            # Rank 0 decodes dev; every process takes its figure, so all make the same decisions below.
            dev_start = time.time()
            per = dist.from_main(lambda: score_split(dev_split, decode_split(model, dev_split), tokens,
                                                     score_units).counts.rate)
            dev_seconds = time.time() - dev_start
            improved = per < state.best_per
            if improved:
                state.best_per, state.best_epoch, state.bad_epochs = per, epoch, 0
                if dist.is_main:
                    save_checkpoint(model_checkpoint(model, recipe, tokens, epoch=epoch, dev_per=per),
                                    out / "best.pt")
            else:
                state.bad_epochs += 1
            loss_sum, utts, frames_all = dist.sum([state.epoch_loss, state.epoch_utts, frames_here])  # all ranks
            record = dict(kind="epoch", epoch=epoch, stage=state.stage, lr=state.lr,
                          train_loss=round(loss_sum / max(utts, 1), 4),
                          dev_per=round(per * 100, 2), best_dev_per=round(state.best_per * 100, 2),
                          frames_per_s=round(frames_all / max(train_seconds, 1e-9), 1),
                          epoch_seconds=round(train_seconds, 1), dev_seconds=round(dev_seconds, 1),
                          skipped_steps=state.skipped_steps)
            if source.skipped:  # augmentations left out (e.g. speed perturbation that made CTC infeasible)
                record["augment_skipped"] = sum(source.skipped.values())
                source.skipped.clear()
            if t.average_last and dist.is_main:  # the epoch's weights, for training.average_last
                keep_epoch(out, model_checkpoint(model, recipe, tokens, epoch=epoch, dev_per=per), epoch, per,
                           t.average_last)
            stage_epochs = epoch - state.stage_start + 1
            state.lr = next_lr(t.schedule, state.lr, t.lr, stage_epochs, stage_max_epochs(state, t), improved,
                               t.newbob_factor)
            state.epoch, state.step = epoch + 1, 0
            state.epoch_loss, state.epoch_utts, state.epoch_frames = 0.0, 0, 0
            message = ""
            if out_of_time:
                message, state.done = f"stopping: training budget of {t.max_minutes:g} minutes reached", True
            elif stage_finished(state, t):
                why = f"no dev improvement in {t.patience} epochs" if state.bad_epochs >= t.patience else "last epoch"
                if state.stage == 1 and t.weight_noise > 0:
                    # Graves 2013: retrain from the best weights with Gaussian weight noise, fresh optimiser.
                    model.load_state_dict(dist.from_main(lambda: load_checkpoint(out / "best.pt")["state_dict"]))
                    optimizer = build_optimizer(recipe, model)
                    state.stage, state.stage_start, state.bad_epochs, state.lr = 2, epoch + 1, 0, t.lr
                    message = f"{why}: stage 2, retraining from best.pt with weight noise {t.weight_noise:g}"
                else:
                    message, state.done = f"{'early stopping: ' if state.bad_epochs >= t.patience else ''}{why}", True
            log.write(**record)
            save_last()
            bar.console.print(f"epoch {epoch}: train loss {record['train_loss']:.3f}, dev {metric} "
                              f"{record['dev_per']:.2f}%{' (best)' if improved else ''}, "
                              f"{record['frames_per_s']:,.0f} frames/s, {train_seconds:.0f} s")
            if message:
                bar.console.print(message)
    log.close()
    dist.dump_weights(model)
    if not dist.is_main:  # rank 0 scores the best model and writes results.json; the others return its results
        return dist.broadcast(None)
    epoch = state.epoch - 1
    best_epoch, skipped_steps = state.best_epoch, state.skipped_steps
    train_minutes = (elapsed_before + time.time() - run_start) / 60
    if not (out / "best.pt").exists():
        raise LstmAsrError(f"{out}: training produced no checkpoint")
    best = load_checkpoint(out / "best.pt")
    model.load_state_dict(best["state_dict"])
    results: dict[str, Any] = {
        "recipe": recipe.name, "corpus": str(c.path), "corpus_type": c.type,
        "scoring": CONVENTIONS.get(c.type, "exact symbols"), "parameters": params,
        "epochs": epoch, "best_epoch": best_epoch, "train_minutes": round(train_minutes, 2),
        "skipped_steps": skipped_steps, "decoding": "greedy", "metric": metric, "head": model.config.head,
    }
    if state.pretraining:
        results["pretraining"] = state.pretraining
    if data.excluded is not None:
        results["excluded_eval_sentences"] = data.excluded_counts
    scored = [("dev", dev_split, c, score_units, out / "decode_dev"), ("test", test_split, c, score_units,
                                                                       out / "decode_test")]
    if data.multi:  # each corpus's own dev and test split, with its own scoring convention
        results["corpora"] = [{"name": x.entry.name, "type": x.entry.type, "path": x.entry.path,
                               "weight": x.entry.weight, "train_utterances": len(x.train) if x.train else 0}
                              for x in data.corpora]
        for role, by_name in (("dev", data.devs), ("test", data.tests)):
            for name, split in by_name.items():
                entry = next(x.entry for x in data.corpora if x.entry.name == name)
                scored.append((f"{role}_corpora.{name}", split, entry, data.score_units[name],
                               out / f"decode_{role}_{name}"))
    for key, split, corpus, units, folder in scored:
        hyp_ids = decode_split(model, split)
        score = score_split(split, hyp_ids, tokens, units)
        write_decode_dir(folder, split, score, {"split": key.split(".")[-1], "decoding": "greedy",
                                                "units": resolve_units(corpus.type, corpus.units), "metric": metric})
        entry = {"per": round(score.counts.rate * 100, 2), **score.to_dict(), "per_speaker": per_speaker(split, score)}
        extra = extra_rates(corpus.type, split, hyp_ids, tokens)
        if extra:  # "per" stays the main rate's key; the rates are also under their own names (cer, wer)
            entry[metric.lower()] = entry["per"]
            entry.update({k.lower(): v for k, v in extra.items()})
        if "." in key:  # results["test_corpora"][name]: one corpus's split
            group, name = key.split(".", 1)
            results.setdefault(group, {})[name] = entry
        else:
            results[key] = entry
    if t.average_last:
        results["averaged"] = score_averaged(model, out, t.average_last, t.average_by, dev_split, test_split,
                                             tokens, score_units, c, metric)
    with reporting_write_errors(out / "results.json", "the results"):
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return dist.broadcast(results)
