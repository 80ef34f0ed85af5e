"""``lstm-asr plot EXP... -o curves.png``: training loss and dev error rate per epoch, several experiments on a figure.

Two steps, so the data can be checked without drawing: :func:`read_curves` turns an experiment's ``metrics.jsonl``
into :class:`Curves` (plain lists), and :func:`draw_curves` draws them with matplotlib (the ``plot`` extra), using
its Agg canvas through ``matplotlib.figure.Figure`` directly: no pyplot, no display, no global backend switch.

x is "epochs trained": the record of epoch ``e`` (1-based, as the trainer prints it) sits at ``e``; a logged step
``s`` of epoch ``e`` at ``e - 1 + s / S``, where ``S`` is the last step logged in that epoch (the trainer does not
log the epoch's batch count, so the step curve is stretched by at most ``log_every`` batches per epoch).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from lstm_asr.errors import LstmAsrError

FORMATS = (".png", ".svg", ".pdf")


@dataclass
class Curves:
    """One experiment's learning curves, read from its ``metrics.jsonl``."""

    name: str  # legend label
    metric: str  # PER, CER or WER: what ``dev_per`` measures for this corpus
    epochs: list[float] = field(default_factory=list)  # epochs trained (1, 2, ...)
    train_loss: list[float] = field(default_factory=list)  # mean CTC loss per utterance over the epoch
    dev_error: list[float] = field(default_factory=list)  # dev error rate, percent
    step_x: list[float] = field(default_factory=list)  # fractional epochs of the logged steps
    step_loss: list[float] = field(default_factory=list)  # batch loss at each logged step
    skipped: int = 0  # lines that were not a well-formed record: skipped and counted
    first_skipped: int = 0  # 1-based line number of the first skipped line (0: none)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def experiment_metric(exp: Path) -> str:
    """PER, CER or WER: ``results.json``'s ``metric`` when the run has finished, else from ``recipe.yaml``'s corpus
    type and units (a run in progress), else PER."""
    try:
        metric = json.loads((exp / "results.json").read_text()).get("metric")
        if isinstance(metric, str) and metric:
            return metric
    except (OSError, ValueError, AttributeError):
        pass
    try:
        corpus = (yaml.safe_load((exp / "recipe.yaml").read_text()) or {}).get("corpus") or {}
        from lstm_asr.scoring.error_rates import metric_name

        return metric_name(str(corpus.get("type", "timit")), str(corpus.get("units") or ""))
    except (OSError, yaml.YAMLError, AttributeError, LstmAsrError):
        return "PER"


def read_curves(exp: Path, name: str | None = None) -> Curves:
    """Parse ``exp/metrics.jsonl`` into curves. Malformed lines (a run killed mid-write, a hand edit) are skipped and
    counted in ``Curves.skipped``; a record logged twice (a resumed run repeats the steps after its last checkpoint)
    keeps its latest value. One-line error if the file is missing or holds no usable record."""
    path = exp / "metrics.jsonl"
    if not exp.is_dir():
        raise LstmAsrError(f"{exp}: not an experiment folder (no such directory)")
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        raise LstmAsrError(f"{path}: not found (is {exp} an experiment folder? training writes it)") from None
    except OSError as exc:
        raise LstmAsrError(f"{path}: cannot read ({exc.strerror or exc})") from None
    curves = Curves(name=name or exp.resolve().name, metric=experiment_metric(exp))
    epochs: dict[int, tuple[float, float]] = {}
    steps: dict[tuple[int, int], float] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        kind = record.get("kind") if isinstance(record, dict) else None
        if kind == "epoch" and all(_number(record.get(k)) for k in ("epoch", "train_loss", "dev_per")):
            epochs[int(record["epoch"])] = (float(record["train_loss"]), float(record["dev_per"]))
        elif kind == "step" and all(_number(record.get(k)) for k in ("epoch", "step", "loss")):
            steps[int(record["epoch"]), int(record["step"])] = float(record["loss"])
        elif kind in ("epoch", "step") or not isinstance(record, dict):
            curves.skipped += 1
            curves.first_skipped = curves.first_skipped or number
        # other well-formed kinds (future record types) are not curves: ignored, not corrupt
    if not epochs and not steps:
        problem = f"{curves.skipped} corrupt lines and " if curves.skipped else ""
        raise LstmAsrError(f"{path}: {problem}no epoch or step records yet")
    for epoch in sorted(epochs):
        curves.epochs.append(float(epoch))
        curves.train_loss.append(epochs[epoch][0])
        curves.dev_error.append(epochs[epoch][1])
    last_step: dict[int, int] = {}
    for epoch, step in steps:
        last_step[epoch] = max(last_step.get(epoch, 0), step)
    for epoch, step in sorted(steps):
        curves.step_x.append(epoch - 1 + step / max(last_step[epoch], 1))
        curves.step_loss.append(steps[epoch, step])
    return curves


def read_experiments(exps: list[Path]) -> list[Curves]:
    """:func:`read_curves` for each experiment, labelled by folder name (with its parent where names repeat)."""
    names = [exp.resolve().name for exp in exps]
    labels = [f"{exp.resolve().parent.name}/{name}" if names.count(name) > 1 else name
              for exp, name in zip(exps, names, strict=True)]
    return [read_curves(exp, label) for exp, label in zip(exps, labels, strict=True)]


def smooth(values: list[float], window: int) -> np.ndarray:
    """Centred moving average over ``window`` points (no lag behind the epoch curve; shorter at the ends, so the
    curve keeps every point)."""
    data = np.asarray(values, dtype=np.float64)
    if window <= 1 or data.size == 0:
        return data
    sums = np.cumsum(np.concatenate([[0.0], data]))
    centre = np.arange(data.size)
    starts = np.maximum(centre - (window - 1) // 2, 0)
    ends = np.minimum(centre + window // 2 + 1, data.size)
    return (sums[ends] - sums[starts]) / (ends - starts)


def check_output(out: Path) -> str:
    """The image format named by ``out``'s extension; one-line error for any other."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise LstmAsrError(f"{out}: unknown image format {suffix or '(no extension)'!r} "
                           f"(use {', '.join(FORMATS)})")
    return suffix[1:]


def draw_curves(curves: list[Curves], out: Path, steps: bool = False, smooth_window: int = 10) -> Path:
    """Draw training loss (left) and dev error rate (right) against epochs, one colour per experiment, and write
    ``out`` as PNG, SVG or PDF by its extension. ``steps`` adds the per-step batch loss, smoothed over
    ``smooth_window`` logged steps (drawn anyway for an experiment with no finished epoch yet)."""
    fmt = check_output(out)
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise LstmAsrError("lstm-asr plot needs matplotlib: pip install 'lstm-asr[plot]'") from None

    fig = Figure(figsize=(11, 4.2), dpi=100, layout="constrained")
    loss_ax, dev_ax = fig.subplots(1, 2)
    metrics = sorted({c.metric for c in curves})
    for i, c in enumerate(curves):
        colour = f"C{i % 10}"
        label = c.name if len(metrics) == 1 else f"{c.name} ({c.metric})"
        if c.step_loss and (steps or not c.epochs):
            loss_ax.plot(c.step_x, smooth(c.step_loss, smooth_window), color=colour, alpha=0.45, linewidth=1,
                         label=None if c.epochs else label)
        if c.epochs:
            marker = "o" if len(c.epochs) <= 30 else None
            loss_ax.plot(c.epochs, c.train_loss, color=colour, marker=marker, markersize=3, label=label)
            dev_ax.plot(c.epochs, c.dev_error, color=colour, marker=marker, markersize=3, label=label)
    loss_ax.set(title="training loss" + (" (faint: per step, smoothed)" if steps else ""), xlabel="epochs trained",
                ylabel="CTC loss per utterance")
    if all(v > 0 for c in curves for v in c.train_loss + c.step_loss):
        loss_ax.set_yscale("log")  # CTC loss falls over orders of magnitude when a model fits
    metric = metrics[0] if len(metrics) == 1 else "error rate"
    dev_ax.set(title=f"dev {metric}", xlabel="epochs trained", ylabel=f"dev {metric} (%)")
    for ax in (loss_ax, dev_ax):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    try:
        fig.savefig(out, format=fmt)
    except OSError as exc:
        raise LstmAsrError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out
