"""The table and plot of a study folder (``lstm-asr study``): per setting, the mean and standard deviation of the
dev and test error over its seeds, the parameters, the epochs and seconds per epoch, and whether its test error
differs from the first setting's by more than seed noise (two-sided Welch's t-test, as Greff et al. 2017 used).

A study folder holds ``study.json`` (the grid: settings, their run folders, the number of seeds) and one
experiment folder per run (``runs/<setting>/seed<k>/``, with ``results.json`` once the run has finished and
``failed.txt`` when it stopped with an error). :func:`read_study` reads what is there, finished or not.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import Any

from lstm_asr.errors import LstmAsrError
from lstm_asr.scoring.significance import welch_t_test

STUDY_FILE = "study.json"
STUDY_FORMAT = "lstm-asr-study/1"


@dataclass
class SettingRuns:
    """What the runs of one setting gave so far."""

    label: str
    planned: int
    dev: list[float] = field(default_factory=list)  # error rates (percent) of the finished runs
    test: list[float] = field(default_factory=list)
    parameters: int = 0
    epochs: list[int] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)  # per finished run, its mean training seconds per epoch
    failed: list[str] = field(default_factory=list)  # the error lines of failed runs


@dataclass
class StudySummary:
    folder: Path
    metric: str  # PER, CER or WER
    seeds: int
    settings: list[SettingRuns]
    command: str = ""


def is_study(folder: Path) -> bool:
    """Whether ``folder`` is a study folder (holds study.json)."""
    return (folder / STUDY_FILE).is_file()


def read_spec(folder: Path) -> dict[str, Any]:
    """The study's ``study.json``; one-line error when it is missing or unreadable."""
    path = folder / STUDY_FILE
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError:
        raise LstmAsrError(f"{path}: not found (is {folder} a study folder?)") from None
    except (OSError, ValueError) as exc:
        raise LstmAsrError(f"{path}: unreadable ({str(exc).splitlines()[0][:100]})") from None
    if not isinstance(spec, dict) or spec.get("format") != STUDY_FORMAT:
        raise LstmAsrError(f"{path}: not an lstm-asr study (expected format {STUDY_FORMAT})")
    return spec


def _mean_epoch_seconds(exp: Path) -> float | None:
    try:
        lines = (exp / "metrics.jsonl").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    seconds: dict[int, float] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("kind") == "epoch" and isinstance(record.get("epoch_seconds"),
                                                                                       int | float):
            seconds[int(record.get("epoch", 0))] = float(record["epoch_seconds"])  # a resumed epoch: the latest
    return fmean(seconds.values()) if seconds else None


def read_study(folder: Path) -> StudySummary:
    """Everything the study's runs have written so far, per setting."""
    spec = read_spec(folder)
    seeds = int(spec["seeds"])
    metric = ""
    settings = []
    for setting in spec["settings"]:
        runs = SettingRuns(label=setting["label"], planned=seeds)
        for k in range(seeds):
            exp = folder / setting["folder"] / f"seed{k}"
            try:
                results = json.loads((exp / "results.json").read_text())
            except FileNotFoundError:
                with contextlib.suppress(OSError):  # a failed run: its error line, for the record
                    runs.failed.append((exp / "failed.txt").read_text(errors="replace").strip() or "failed")
                continue
            except (OSError, ValueError) as exc:
                raise LstmAsrError(f"{exp / 'results.json'}: unreadable ({str(exc).splitlines()[0][:100]})") from None
            metric = metric or str(results.get("metric", "PER"))
            runs.dev.append(float(results["dev"]["per"]))
            runs.test.append(float(results["test"]["per"]))
            runs.parameters = int(results.get("parameters", 0))
            runs.epochs.append(int(results.get("epochs", 0)))
            seconds = _mean_epoch_seconds(exp)
            if seconds is not None:
                runs.epoch_seconds.append(seconds)
        settings.append(runs)
    return StudySummary(folder=folder, metric=metric or "PER", seeds=seeds, settings=settings,
                        command=str(spec.get("command", "")))


def _mean_std(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{fmean(values):.{digits}f} ± {stdev(values):.{digits}f}"


def study_rows(summary: StudySummary) -> list[dict[str, Any]]:
    """One dict per setting: the table's figures as numbers (None where there is nothing yet)."""
    first = summary.settings[0].test if summary.settings else []
    rows = []
    for index, s in enumerate(summary.settings):
        welch = welch_t_test(s.test, first) if index else None
        rows.append({
            "setting": s.label, "finished": len(s.test), "planned": s.planned, "failed": len(s.failed),
            "parameters": s.parameters or None,
            "epochs": fmean(s.epochs) if s.epochs else None,
            "epoch_seconds": fmean(s.epoch_seconds) if s.epoch_seconds else None,
            "dev_mean": fmean(s.dev) if s.dev else None, "dev_std": stdev(s.dev) if len(s.dev) > 1 else None,
            "test_mean": fmean(s.test) if s.test else None, "test_std": stdev(s.test) if len(s.test) > 1 else None,
            "test_delta": fmean(s.test) - fmean(first) if index and s.test and first else None,
            "welch_t": welch.t if welch else None, "welch_df": welch.df if welch else None,
            "p": welch.p if welch else None,
            "dev": s.dev, "test": s.test,
        })
    return rows


def study_table(summary: StudySummary) -> str:
    """A markdown table with one row per setting, and a line saying what the columns and the test are."""
    m = summary.metric
    columns = ("setting", "runs", "parameters", "epochs", "s/epoch", f"dev {m} %", f"test {m} %",
               "test Δ", "p (Welch)")
    lines = ["| " + " | ".join(columns) + " |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = study_rows(summary)
    for row, s in zip(rows, summary.settings, strict=True):
        runs = f"{row['finished']}/{row['planned']}" + (f" ({row['failed']} failed)" if row["failed"] else "")
        p = row["p"]
        cells = [s.label.replace("|", "/"), runs,
                 f"{row['parameters'] / 1e6:.3f}M" if row["parameters"] else "-",
                 f"{row['epochs']:.1f}" if row["epochs"] is not None else "-",
                 f"{row['epoch_seconds']:.1f}" if row["epoch_seconds"] is not None else "-",
                 _mean_std(s.dev), _mean_std(s.test),
                 f"{row['test_delta']:+.2f}" if row["test_delta"] is not None else "-",
                 "-" if p is None else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}") + ("*" if p < 0.05 else "")]
        lines.append("| " + " | ".join(cells) + " |")
    first = summary.settings[0].label if summary.settings else "-"
    lines.append("")
    lines.append(f"Mean ± standard deviation over seeds (greedy decoding); test Δ: mean test {m} minus the first "
                 f"setting's ({first}); p: two-sided Welch's t-test of the setting's test {m}s against the first "
                 "setting's (unequal variances, as Greff et al. 2017); * p < 0.05.")
    return "\n".join(lines) + "\n"


def draw_study(summary: StudySummary, out: Path) -> Path:
    """Dev and test error per setting: mean with a standard-deviation bar, each seed a dot. ImportError without
    matplotlib (the plot extra)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("the study plot needs matplotlib: pip install 'lstm-asr[plot]'") from None
    width = max(6.0, 0.75 * len(summary.settings) + 2)
    fig = Figure(figsize=(width, 4.2), dpi=100, layout="constrained")
    ax = fig.subplots()
    for offset, split, colour in ((-0.15, "dev", "C0"), (0.15, "test", "C1")):
        xs, means, stds = [], [], []
        for k, s in enumerate(summary.settings):
            values = getattr(s, split)
            if not values:
                continue
            xs.append(k + offset)
            means.append(fmean(values))
            stds.append(stdev(values) if len(values) > 1 else 0.0)
            ax.scatter([k + offset] * len(values), values, s=9, color=colour, alpha=0.5, zorder=3)
        ax.errorbar(xs, means, yerr=stds, fmt="o", color=colour, capsize=4, label=split, zorder=4)
    ax.set_xticks(range(len(summary.settings)), [s.label for s in summary.settings], rotation=30, ha="right",
                  fontsize="small")
    ax.set(ylabel=f"{summary.metric} (%)", title=f"{summary.folder.name}: {summary.seeds} seeds per setting")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    try:
        fig.savefig(out)
    except OSError as exc:
        raise LstmAsrError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return out


def summary_json(summary: StudySummary) -> dict[str, Any]:
    """The table's figures as JSON (``summary.json`` in the study folder)."""
    rows = study_rows(summary)
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
    return {"metric": summary.metric, "seeds": summary.seeds, "test": "two-sided Welch's t-test of test error "
            "against the first setting", "settings": rows}
