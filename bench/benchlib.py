"""The benchmark harness shared by the scripts in bench/: common options, set-up, timing and output.

Each script is run as ``.venv/bin/python bench/NAME.py`` from the repository root; Python then puts bench/ (the
script's folder) on ``sys.path``, so ``import benchlib`` finds this module. Importing it also puts the repository
root and ``tests/`` on ``sys.path`` (see below), so import it before ``fake_timit`` or ``data_prep``.

A script's run is: ``args = parser(...).parse_args()``, ``start(args)``, time with :func:`median_ms`, then
``emit(result, args.json)`` (the JSON object) and :func:`print_table` (the table people read).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"

# Only bench/ is on sys.path when a script runs: the root makes the checkout's own lstm_asr and data_prep importable
# without an installed copy, and tests/ holds the generated-corpus builder (fake_timit) that some benchmarks train
# on. Same order as the scripts had: the root first.
for _path in (TESTS, ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# Options of the harness itself, not of what is measured: left out of the "config" that results record.
_HARNESS_OPTIONS = ("json",)


def parser(description: str | None, *, threads: int | None = 2, repeats: int | None = None,
           **kwargs: Any) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark shares; the script adds its own to it.

    ``--threads N`` (torch threads; default ``threads``, left out when None), ``--repeats N`` (timed repeats whose
    median is reported; default ``repeats``, left out when None) and ``--json FILE`` (also write the JSON result
    there). ``kwargs`` go to :class:`argparse.ArgumentParser` (e.g. ``formatter_class``).
    """
    ap = argparse.ArgumentParser(description=description, **kwargs)
    if threads is not None:
        ap.add_argument("--threads", type=int, default=threads, help="torch threads (default: %(default)s)")
    if repeats is not None:
        ap.add_argument("--repeats", type=int, default=repeats,
                        help="timed repeats; medians are reported (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", default="",
                    help="also write the JSON result to FILE (it is printed either way)")
    return ap


def add_shape_options(ap: argparse.ArgumentParser, batch: bool = True) -> None:
    """Add the options for the shape of the network and batch: ``--hidden``, ``--layers``, ``--batch``, ``--frames``.

    ``batch=False`` leaves out ``--batch`` and ``--frames`` (for scripts whose batches come from elsewhere). The
    defaults are the shape that the training-step figures in RESULTS.md are quoted at: a 3x250 BLSTM, as in Graves
    2013, on batches of 32 x 300 frames.
    """
    if batch:
        ap.add_argument("--batch", type=int, default=32)
        ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--hidden", type=int, default=250)
    ap.add_argument("--layers", type=int, default=3)


def start(args: argparse.Namespace, seed: int | None = 0) -> None:
    """Set torch's thread count from ``args.threads`` (when the script has that option) and seed torch's RNG.

    The seed makes the random weights and inputs the same from run to run (``None``: leave the RNG alone).
    """
    threads = getattr(args, "threads", None)
    if threads is not None:
        torch.set_num_threads(threads)
    if seed is not None:
        torch.manual_seed(seed)


def config(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options as a dict for a result's "config", without the harness's own (``--json``).

    Results quoted elsewhere have just the script's options there; ``--json`` says where output goes, not what ran.
    """
    return {k: v for k, v in vars(args).items() if k not in _HARNESS_OPTIONS}


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, in milliseconds, after ``warmup`` untimed calls.

    The untimed calls let allocators, kernels and TorchScript's optimiser settle, so the first call's one-off cost
    is not in the median.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes: a step for :func:`interleaved_rounds`."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def save_model(model: torch.nn.Module, features: dict[str, Any], tokens: list[str], path: str | Path) -> Path:
    """``model`` (a ``BLSTMCTC``, its config included) as a bare checkpoint that ``Recognizer.load`` reads: no recipe,
    TIMIT scoring conventions. Returns ``path``."""
    from dataclasses import asdict

    from lstm_asr.nn.checkpoint import save_checkpoint

    save_checkpoint({"model_config": asdict(model.config), "features": features, "tokens": tokens,
                     "corpus_type": "timit", "recipe": {}, "state_dict": model.state_dict()}, path)
    return Path(path)


def interleaved_rounds(steps: dict[str, Callable[[], float]], repeats: int, label: str = "") -> dict[str, list[float]]:
    """Seconds per call of every ``steps[name]()`` (each returns its own timed seconds) over ``repeats`` rounds, the
    configurations interleaved within a round so that a slow spell of a shared machine hits all of them alike.

    Round 0 is a warm-up (allocators, kernels) and is not kept; each kept round is printed to stderr as it ends,
    after ``label``."""
    times: dict[str, list[float]] = {n: [] for n in steps}
    for rnd in range(repeats + 1):
        for n, step in steps.items():
            t = step()
            if rnd:
                times[n].append(t)
        if rnd:
            print(f"{label}round {rnd}: " + " ".join(f"{n} {times[n][-1]:.3f}s" for n in steps),
                  file=sys.stderr, flush=True)
    return times


def ctc_batch(batch: int, frames: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A synthetic training batch shaped like TIMIT's for the step benchmarks: 123 features, lengths spread as in a
    length-bucketed batch (85-100% of the longest), 12 frames per label (feasible at 30 ms too), 61 labels + blank.
    Returns (features, lengths, targets, target_lengths)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(int(0.85 * frames), frames + 1, (batch,), generator=g)
    lengths[0] = frames
    x = torch.randn(batch, frames, 123, generator=g)
    target_lengths = torch.full((batch,), frames // 12)
    targets = torch.randint(1, 62, (int(target_lengths.sum()),), generator=g)
    return x, lengths, targets, target_lengths


def status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in kB (``VmRSS``, ``VmHWM``); 0 if it is absent.

    tracemalloc does not see torch's allocations, so the kernel's figures are the ones to report.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0



def step_peak_memory(step: Callable[[], float]) -> dict[str, float]:
    """Run ``step`` (one training step returning its seconds) once and measure its memory: peak resident memory
    (MiB) and its growth over the resident memory before it. The kernel's peak-RSS mark is reset first (Linux >= 4.0),
    so the peak is the step's, not the imports' (importing torch peaks higher than a small model needs)."""
    before = status_kb("VmRSS") / 1024
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        seconds = step()
        after = status_kb("VmHWM") / 1024
    except OSError:
        import resource

        seconds = step()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mib": round(after, 1), "step_growth_mib": round(after - before, 1), "step_s": round(seconds, 3)}


def write_json(result: dict[str, Any], path: str | Path, indent: int | None = 2) -> str:
    """Write ``result`` as JSON to ``path`` (making its folder), as :func:`emit` prints it; return the text."""
    text = json.dumps(result, indent=indent)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return text


def emit(result: dict[str, Any], json_file: str | Path = "", indent: int | None = 2) -> None:
    """Print ``result`` as JSON (what scripts and notes parse) and, when ``json_file`` is given, write it there too."""
    print(write_json(result, json_file, indent) if json_file else json.dumps(result, indent=indent))


class Column(NamedTuple):
    """A table column: its title, the format spec of its cells (e.g. ``">9,.0f"``) and the gap before it."""

    title: str
    spec: str = ""
    gap: str = " "


_ALIGN_WIDTH = re.compile(r"[<>^=]?\d*")


def _title_spec(spec: str) -> str:
    """The alignment and width of a cell spec (``">9,.0f"`` -> ``">9"``): what the column's title is formatted with."""
    match = _ALIGN_WIDTH.match(spec)
    return match.group(0) if match else ""


def print_table(rows: Iterable[Sequence[object] | str], columns: Sequence[Column | tuple[str, ...]],
                markdown: bool = False) -> None:
    """Print a title line and one line per row, each cell formatted with its column's spec.

    Titles take the alignment and width of their column's spec, so titles and figures line up. A row that is a
    str is printed as it stands (e.g. a configuration that failed). ``markdown``: a Markdown table instead, for
    pasting into notes (give specs without widths; a column whose spec starts with ``>`` is marked right-aligned).
    """
    cols = [Column(*c) for c in columns]

    def line(cells: Iterable[str]) -> str:
        if markdown:
            return "| " + " | ".join(cells) + " |"
        return "".join((c.gap if i else "") + cell for i, (c, cell) in enumerate(zip(cols, cells, strict=True)))

    print(line(c.title if markdown else f"{c.title:{_title_spec(c.spec)}}" for c in cols))
    if markdown:
        print("|" + "|".join("---:" if c.spec.startswith(">") else "---" for c in cols) + "|")
    for row in rows:
        print(row if isinstance(row, str) else line(format(v, c.spec) for c, v in zip(cols, row, strict=True)))
