"""``lstm-asr study RECIPE --vary key=a,b,c --seeds N``: train a grid of settings, several seeds each, resumably,
then tabulate and plot mean and spread per setting with a significance test against the first setting.

The grid is the product of the ``--vary`` lists (the first value of each is the reference the others are tested
against); every setting trains ``--seeds`` times with ``training.seed`` = the recipe's seed + 0, 1, ... Each run is
an ordinary experiment folder, trained by ``lstm-asr train RECIPE --out RUN --resume --set ...`` in a subprocess
(``--jobs`` of them at once), so a run is exactly what that command line gives and its ``train.log`` says how it went.

Resuming: the study folder's ``study.json`` records the grid. Running the same command again skips finished runs
(``results.json`` present), continues interrupted ones from their ``last.pt`` (the trainer's exact resume) and
starts the rest; a different grid or recipe in the same folder is refused. ``--seeds`` may grow (or shrink) between
invocations: seed k's runs are the same whatever the count. The children die with the study (Linux), so a
killed study leaves no run behind to collide with the next one; a lock keeps two studies out of one folder.

Everything a user can get wrong is checked before the first run starts: the ``--vary`` keys (recipe keys, not
the corpus or features, which every setting shares, nor ``training.seed``, which ``--seeds`` sets), every setting's
recipe, and that every setting's model can be built on the prepared features.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import difflib
import fcntl
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstm_asr.atomic_file import write_atomically
from lstm_asr.errors import LstmAsrError, RecipeError, reporting_write_errors
from lstm_asr.recipe import Recipe, load_recipe
from lstm_asr.scoring.study_report import (
    STUDY_FILE,
    STUDY_FORMAT,
    draw_study,
    read_spec,
    read_study,
    study_table,
    summary_json,
)
from lstm_asr.training.resume import recipe_differences

# Keys a study may not vary: what every setting must share, and what the study sets itself.
FIXED_PREFIXES = {"corpus.": "every setting trains on the same corpus and prepared features",
                  "features.": "every setting trains on the same corpus and prepared features"}
FIXED_KEYS = {"name": "the runs are named by their folders", "training.seed": "--seeds sets it (recipe seed + k)"}


@dataclass(frozen=True)
class Vary:
    """One ``--vary key=a,b,c``: a recipe key and its values as written (YAML, parsed like ``--set``)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: its label (``model.cell=nfg``), its ``--set`` overrides and its folder."""

    label: str
    overrides: tuple[str, ...]
    folder: str  # relative to the study folder; seed k's run is folder/seed<k>


@dataclass
class StudyPlan:
    recipe_path: Path
    recipe: Recipe  # the recipe with the common ``--set`` overrides
    sets: list[str]
    varies: list[Vary]
    seeds: int
    out: Path
    settings: list[Setting]

    def run_folder(self, setting: Setting, k: int) -> Path:
        return self.out / setting.folder / f"seed{k}"

    def run_overrides(self, setting: Setting, k: int) -> list[str]:
        """The ``--set`` arguments of seed ``k`` of ``setting``, after the common ones."""
        return [*self.sets, *setting.overrides, f"training.seed={self.recipe.training.seed + k}"]


def recipe_keys(cls: type = Recipe, prefix: str = "") -> set[str]:
    """Every dotted key of the recipe schema (``model.cell``, ``corpus.generate.seed``, ...)."""
    keys = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        nested = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)] or (
            [tp] if dataclasses.is_dataclass(tp) else [])
        if nested:
            keys |= recipe_keys(nested[0], f"{prefix}{f.name}.")
        else:
            keys.add(f"{prefix}{f.name}")
    return keys


def parse_vary(text: str) -> Vary:
    """``key=a,b,c`` -> :class:`Vary`; one-line errors for a malformed option, an unknown or fixed key, repeats."""
    if "=" not in text:
        raise RecipeError("--vary", text, "expected key=value1,value2,...")
    key, raw = (part.strip() for part in text.split("=", 1))
    known = recipe_keys()
    if key not in known and not key.startswith("metadata."):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        raise RecipeError("--vary", key, "not a recipe key" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if key in FIXED_KEYS:
        raise RecipeError("--vary", key, f"cannot be varied: {FIXED_KEYS[key]}")
    for prefix, why in FIXED_PREFIXES.items():
        if key.startswith(prefix):
            raise RecipeError("--vary", key, f"cannot be varied: {why} (run one study per corpus or feature set)")
    values = tuple(v.strip() for v in raw.split(","))
    if not raw or any(not v for v in values):
        raise RecipeError("--vary", key, f"empty value in {raw!r} (expected value1,value2,...)")
    if len(set(values)) < len(values):
        raise RecipeError("--vary", key, f"a value is listed twice in {raw!r}")
    return Vary(key, values)


def _slug(label: str) -> str:
    """A folder name for a setting's label: letters, digits and ``._=-`` kept, the rest ``_``."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", label)[:80]


def plan_study(recipe_path: Path, varies: list[str], seeds: int, sets: list[str] | None = None,
               out: Path | None = None) -> StudyPlan:
    """The grid of a study, every setting's recipe checked: one-line errors before anything is trained."""
    if seeds < 1:
        raise LstmAsrError(f"--seeds: must be >= 1, got {seeds}")
    if not varies:
        raise LstmAsrError("study: give at least one --vary key=value1,value2,...")
    parsed = [parse_vary(v) for v in varies]
    keys = [v.key for v in parsed]
    if len(set(keys)) < len(keys):
        raise RecipeError("--vary", next(k for k in keys if keys.count(k) > 1), "varied twice")
    sets = list(sets or [])
    recipe = load_recipe(recipe_path, sets)
    settings = []
    for index, combo in enumerate(itertools.product(*(v.values for v in parsed))):
        overrides = tuple(f"{v.key}={value}" for v, value in zip(parsed, combo, strict=True))
        label = " ".join(overrides)
        try:
            load_recipe(recipe_path, [*sets, *overrides])
        except RecipeError as exc:
            raise LstmAsrError(f"study setting {label}: {exc}") from None
        settings.append(Setting(label, overrides, f"runs/{index:02d}_{_slug(label)}"))
    return StudyPlan(recipe_path, recipe, sets, parsed, seeds, out or Path("exp") / f"study_{recipe.name}", settings)


def _spec(plan: StudyPlan) -> dict[str, Any]:
    command = " ".join(["lstm-asr study", str(plan.recipe_path), *(f"--vary {v.key}={','.join(v.values)}"
                                                                    for v in plan.varies),
                        f"--seeds {plan.seeds}", *(f"--set {s}" for s in plan.sets)])
    return {"format": STUDY_FORMAT, "command": command, "recipe_file": str(plan.recipe_path),
            "recipe": plan.recipe.to_dict(), "sets": plan.sets,
            "vary": [{"key": v.key, "values": list(v.values)} for v in plan.varies], "seeds": plan.seeds,
            "settings": [{"label": s.label, "overrides": list(s.overrides), "folder": s.folder}
                         for s in plan.settings]}


def _check_same_study(plan: StudyPlan, path: Path) -> None:
    old = read_spec(plan.out)
    new = _spec(plan)
    differs = [what for what, key in (("--vary", "vary"), ("--set", "sets")) if old.get(key) != new[key]]
    changed = recipe_differences(old.get("recipe") or {}, new["recipe"])
    if changed:
        differs.append("the recipe (" + ", ".join(changed[:5]) + ")")
    if differs:
        raise LstmAsrError(f"{path}: this folder holds another study (it differs in {', '.join(differs)}); run the "
                           "same command to continue it, or give another --out")


def _die_with_parent() -> None:
    """In a run's subprocess (Linux): be terminated when the study process dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with reporting_write_errors(path, "the study"):
        write_atomically(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def _check_models(plan: StudyPlan) -> None:
    """Prepare the features once (every setting shares them) and build every setting's model on them, so that a
    setting the model cannot take (e.g. a convolution kernel wider than the features) stops the study before any
    training."""
    from lstm_asr.data.prep import load_splits
    from lstm_asr.training.train import build_model

    split = load_splits(plan.recipe, show_progress=False)[plan.recipe.corpus.train_split]
    for s in plan.settings:
        try:
            build_model(load_recipe(plan.recipe_path, [*plan.sets, *s.overrides]), split.dim,
                        len(split.index["tokens"]))
        except LstmAsrError as exc:
            raise LstmAsrError(f"study setting {s.label}: {exc}") from None


def _last_error(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return "no log"
    errors = [x for x in lines if x.startswith("error:") or "Error" in x]
    return (errors or lines or ["no output"])[-1][:300]


def _describe(run: Path) -> str:
    try:
        r = json.loads((run / "results.json").read_text())
    except (OSError, ValueError):
        return "finished"
    m = r.get("metric", "PER")
    return (f"dev {m} {r['dev']['per']:.2f}%, test {m} {r['test']['per']:.2f}%, {r.get('epochs')} epochs, "
            f"{r.get('train_minutes', 0):.1f} min")


def run_study(plan: StudyPlan, jobs: int = 1,
              echo: typing.Callable[[str], None] = print) -> tuple[str, Path | None]:
    """Train the plan's unfinished runs (``jobs`` at once), then write ``table.md``, ``summary.json`` and
    ``study.png`` into the study folder; returns the table and the plot's path (see :func:`write_report`)."""
    if jobs < 1:
        raise LstmAsrError(f"--jobs: must be >= 1, got {jobs}")
    out = plan.out
    with reporting_write_errors(out, "the study folder"):
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / ".study.lock", "w")  # noqa: SIM115 (held until the study ends)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise LstmAsrError(f"{out}: another lstm-asr study is running in this folder") from None
    try:
        if (out / STUDY_FILE).exists():
            _check_same_study(plan, out / STUDY_FILE)
        _check_models(plan)
        _write_json(out / STUDY_FILE, _spec(plan))
        _train_runs(plan, jobs, echo)
        return write_report(out)
    finally:
        lock.close()


def _train_runs(plan: StudyPlan, jobs: int, echo: typing.Callable[[str], None]) -> None:
    # Seed-major: every setting's seed 0, then every setting's seed 1, ...: a study stopped part-way (or given a
    # time limit) has comparable runs of every setting rather than all seeds of the first few.
    runs = [(s, k) for k in range(plan.seeds) for s in plan.settings]
    pending = [(s, k) for s, k in runs if not (plan.run_folder(s, k) / "results.json").exists()]
    echo(f"study {plan.out}: {len(plan.settings)} settings x {plan.seeds} seeds = {len(runs)} runs; "
         f"{len(runs) - len(pending)} finished, {len(pending)} to train ({jobs} at a time)")
    threads = []
    if jobs > 1 and plan.recipe.training.threads == 0:  # share the cores instead of oversubscribing them
        threads = [f"training.threads={max(1, (os.cpu_count() or 1) // jobs)}"]
    running: dict[subprocess.Popen, tuple[Setting, int, Path, float]] = {}
    done = len(runs) - len(pending)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                setting, k = pending.pop(0)
                run = plan.run_folder(setting, k)
                run.mkdir(parents=True, exist_ok=True)
                (run / "failed.txt").unlink(missing_ok=True)
                args = [sys.executable, "-m", "lstm_asr", "train", str(plan.recipe_path), "--out", str(run), "--resume"]
                for o in [*plan.run_overrides(setting, k), *threads]:
                    args += ["--set", o]
                with open(run / "train.log", "ab") as log:
                    log.write(f"$ {' '.join(args)}\n".encode())
                    log.flush()
                    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent)  # noqa: PLW1509 (started from this thread)
                running[proc] = (setting, k, run, time.time())
                echo(f"  started {setting.label} seed {k} ({run})")
            time.sleep(0.2)
            for proc in [p for p in running if p.poll() is not None]:
                setting, k, run, _ = running.pop(proc)
                done += 1
                if proc.returncode == 0:
                    echo(f"[{done}/{len(runs)}] {setting.label} seed {k}: {_describe(run)}")
                else:
                    error = _last_error(run / "train.log")
                    (run / "failed.txt").write_text(f"exit status {proc.returncode}\n{error}\n")
                    echo(f"[{done}/{len(runs)}] {setting.label} seed {k}: failed ({error}; see {run / 'train.log'})")
    finally:
        for proc in running:  # interrupted: stop the runs (each resumes from its last.pt next time)
            proc.terminate()
        for proc in running:
            proc.wait()


def write_report(folder: Path) -> tuple[str, Path | None]:
    """Write ``table.md``, ``summary.json`` and (with the plot extra's matplotlib) ``study.png`` for a study
    folder; return the table and the plot's path (None without matplotlib)."""
    summary = read_study(folder)
    table = study_table(summary)
    with reporting_write_errors(folder / "table.md", "the study table"):
        (folder / "table.md").write_text(f"`{summary.command}`\n\n{table}")
    _write_json(folder / "summary.json", summary_json(summary))
    try:
        return table, draw_study(summary, folder / "study.png")
    except ImportError:
        return table, None
